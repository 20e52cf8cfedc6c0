// Small helpers every kernel family shares: one copy each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "simd.hpp"

namespace fastcnn {

constexpr int64_t ceil_div(int64_t value, int64_t step) { return (value + step - 1) / step; }
constexpr int64_t round_up(int64_t value, int64_t step) { return ceil_div(value, step) * step; }
constexpr int64_t round_down(int64_t value, int64_t step) { return value / step * step; }

// The one of three things that belongs to the SIMD path in use.
template <typename Choice>
const Choice& for_simd(Simd simd, const Choice& avx512, const Choice& avx2, const Choice& generic) {
    return simd == Simd::avx512 ? avx512 : simd == Simd::avx2 ? avx2 : generic;
}

// out[i] += Σ_b partials[b·size + i] for b = 0, 1, … blocks − 1 in that order:
// a reduction of per-task partial sums that does not depend on which thread
// computed which block.
template <typename T>
void add_partials_in_order(T* out, const T* partials, int64_t blocks, int64_t size) {
    for (int64_t block = 0; block < blocks; ++block)
        for (int64_t i = 0; i < size; ++i) out[i] += partials[block * size + i];
}

// Scratch memory of the calling thread: grows to the largest request and is
// kept for the next call; never value-initialised; 64-byte aligned. A kernel
// call takes it whole (one call per thread at a time), and may hand parts of
// it to the threads it starts.
template <typename T>
T* thread_workspace(int64_t count) {
    struct Buffer {
        std::unique_ptr<unsigned char[]> bytes;
        size_t size = 0;
    };
    thread_local Buffer buffer;
    const size_t needed = size_t(count) * sizeof(T) + 64;
    if (buffer.size < needed) {
        buffer.size = 0;  // stays empty if the allocation throws
        buffer.bytes.reset();
        buffer.bytes.reset(new unsigned char[needed]);
        buffer.size = needed;
    }
    const auto address = reinterpret_cast<uintptr_t>(buffer.bytes.get());
    return reinterpret_cast<T*>((address + 63) / 64 * 64);
}

}  // namespace fastcnn
