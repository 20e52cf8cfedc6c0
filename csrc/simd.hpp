// Which SIMD instructions the kernels use, chosen at run time.
//
// The module is compiled for plain x86-64 (or whatever the target is); only
// functions marked FASTCNN_TARGET_AVX2 / FASTCNN_TARGET_AVX512 use wider
// instructions, and they are called only when the CPU has them. So one wheel
// runs on every x86-64 CPU and uses AVX-512 where it exists.
#pragma once

#include <string>
#include <vector>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTCNN_X86_DISPATCH 1
#define FASTCNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FASTCNN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#else
#define FASTCNN_X86_DISPATCH 0
#endif

// GCC and Clang vector extensions: Vec<T, L> is L lanes of T. Functions written
// with them are inlined into a function built for each SIMD path.
#if defined(__GNUC__)
#define FASTCNN_VECTORS 1
#define FASTCNN_INLINE inline __attribute__((always_inline))
namespace fastcnn {
template <typename T, int L>
struct VecOf {
    typedef T type __attribute__((vector_size(L * sizeof(T))));
};
template <typename T, int L>
using Vec = typename VecOf<T, L>::type;

// out = the lanes of a and b picked by index: out[l] = index[l] < L ?
// a[index[l]] : b[index[l] - L]. GCC's __builtin_shuffle; clang has no shuffle
// by a variable mask, so it gets a lane loop (the indices are constants where
// fastcnn uses it), with vectors by reference: clang refuses them by value
// between functions built for other targets.
#if defined(__clang__)
template <typename V, typename Index>
FASTCNN_INLINE void shuffle_lanes(V& out, const V& a, const V& b, const Index& index) {
    constexpr int L = int(sizeof(V) / sizeof(a[0]));
    V result;
    for (int l = 0; l < L; ++l) {
        const int k = int(index[l]);
        result[l] = k < L ? a[k] : b[k - L];
    }
    out = result;
}
#define FASTCNN_SHUFFLE2(out, a, b, index) fastcnn::shuffle_lanes(out, a, b, index)
#else
#define FASTCNN_SHUFFLE2(out, a, b, index) ((out) = __builtin_shuffle(a, b, index))
#endif
}
#else
#define FASTCNN_VECTORS 0
#define FASTCNN_INLINE inline
#endif

namespace fastcnn {

enum class Simd { generic, avx2, avx512 };

Simd active_simd();

// "avx512", "avx2" or "generic".
std::string simd_path();
std::vector<std::string> supported_simd_paths();
// Throws std::invalid_argument for a path this CPU or build cannot run.
void set_simd_path(const std::string& name);

}  // namespace fastcnn
