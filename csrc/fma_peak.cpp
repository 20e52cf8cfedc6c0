#include "fma_peak.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "simd_lanes.hpp"

namespace fastcnn {
namespace {

#if defined(__clang__)
// clang compiles the template before inlining it into the AVX-512 function, where a
// 512-bit value fits no register constraint: through memory (one store and load per
// round of 24 FMAs, off the critical path).
#define FASTCNN_OPAQUE(value) __asm__("" : "+m"(value))
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTCNN_OPAQUE(value) __asm__("" : "+x"(value))
#elif defined(__GNUC__) && defined(__aarch64__)
#define FASTCNN_OPAQUE(value) __asm__("" : "+w"(value))
#elif defined(__GNUC__)
#define FASTCNN_OPAQUE(value) __asm__("" : "+m"(value))
#else  // through memory: slower, but never folded away
#define FASTCNN_OPAQUE(value) (value = *static_cast<volatile decltype(value)*>(&value))
#endif

// Iterations of the 24-accumulator loop between two looks at the clock.
constexpr int64_t kRound = int64_t(1) << 14;
constexpr int kAccumulators = 24;  // ≥ 4-cycle latency × 2 pipes, and 24 of 32 registers

// Runs `rounds` rounds of kAccumulators independent FMA chains (acc = acc·s + t,
// which converges, so no value overflows) and returns a sum of the results so
// the loop cannot be dropped.
template <typename V, typename T>
FASTCNN_INLINE T fma_rounds(int64_t rounds) {
    V acc[kAccumulators];
#pragma GCC unroll 24
    for (int i = 0; i < kAccumulators; ++i) acc[i] = V{} + T(i);
    const V scale = V{} + T(0.999), shift = V{} + T(0.001);
    for (int64_t r = 0; r < rounds * kRound; ++r) {
#pragma GCC unroll 24
        for (int i = 0; i < kAccumulators; ++i) acc[i] = acc[i] * scale + shift;
        // An empty asm that "may change" acc keeps the compiler from
        // folding the recurrence.
        FASTCNN_OPAQUE(acc[0]);
    }
    V sum{};
#pragma GCC unroll 24
    for (int i = 0; i < kAccumulators; ++i) sum += acc[i];
    if constexpr (std::is_arithmetic_v<V>)
        return sum;
    else
        return sum[0];
}

#if FASTCNN_VECTORS
template <typename T>
using GenericVector = Vec<T, 16 / sizeof(T)>;
#else
template <typename T>
using GenericVector = T;
#endif

template <typename T>
T generic_rounds(int64_t rounds) { return fma_rounds<GenericVector<T>, T>(rounds); }
#if FASTCNN_X86_DISPATCH
template <typename T>
FASTCNN_TARGET_AVX2 T avx2_rounds(int64_t rounds) {
    return fma_rounds<typename Avx2Isa::template Lanes<T>::V, T>(rounds);
}
template <typename T>
FASTCNN_TARGET_AVX512 T avx512_rounds(int64_t rounds) {
    return fma_rounds<typename Avx512Isa::template Lanes<T>::V, T>(rounds);
}
#endif

// FLOP/s of one thread looping for `seconds`.
template <typename T>
double one_thread(double seconds) {
    using Rounds = T (*)(int64_t);
    int bytes = 16;
    Rounds rounds = generic_rounds<T>;
#if FASTCNN_X86_DISPATCH
    const Simd simd = active_simd();
    rounds = for_simd<Rounds>(simd, avx512_rounds<T>, avx2_rounds<T>, generic_rounds<T>);
    bytes = for_simd(simd, 64, 32, 16);
#endif
    volatile T sink = rounds(1);  // warm up: clocks and wide units
    const auto start = std::chrono::steady_clock::now();
    int64_t done = 0;
    double elapsed = 0;
    do {
        sink = sink + rounds(4);
        done += 4;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < seconds);
    const double flops_per_round = double(kRound) * kAccumulators * 2 * (bytes / int(sizeof(T)));
    return double(done) * flops_per_round / elapsed;
}

template <typename T>
double all_threads(int threads, double seconds) {
    std::vector<double> rates(threads);
    std::vector<std::thread> others;
    for (int t = 1; t < threads; ++t)
        others.emplace_back([&rates, t, seconds] { rates[t] = one_thread<T>(seconds); });
    rates[0] = one_thread<T>(seconds);
    for (auto& other : others) other.join();
    double total = 0;
    for (double rate : rates) total += rate;
    return total / 1e9;
}

}  // namespace

double fma_peak(bool double_precision, int threads, double seconds) {
    return double_precision ? all_threads<double>(threads, seconds)
                            : all_threads<float>(threads, seconds);
}

}  // namespace fastcnn
