// Dense matrix multiply: C = A·B (or C += A·B), BLIS-style.
//
// The five loops around a register-tile micro-kernel: split n by NC, k by KC
// (pack a KC×NC panel of B), split m by MC (pack an MC×KC block of A), then
// MR×NR tiles. A and B are read through (row stride, column stride) pairs, so
// transposed and sliced operands need no copy; C is row-major with leading
// dimension ldc. The micro-kernel is chosen at run time from the CPU's SIMD
// features (AVX-512, AVX2+FMA, or portable code).
#pragma once

#include <cstdint>

namespace fastcnn {

// Block sizes (elements). KC×NC of B stays in L3, MC×KC of A in L2.
constexpr int64_t kGemmKC = 256;
constexpr int64_t kGemmMC = 120;  // a multiple of every MR below
constexpr int64_t kGemmNC = 2048;

template <typename T>
struct MatrixRef {
    const T* data;
    int64_t row_stride;  // in elements, may be negative or zero
    int64_t col_stride;
};

// C[m×n] (=|+=) A[m×k]·B[k×n]. With accumulate = false, C is written, never
// read. With allow_threads, large products are split over threads by blocks of
// C; each element's sum runs in the same order whatever the thread count.
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef<T> a, MatrixRef<T> b, T* c,
          int64_t ldc, bool accumulate, bool allow_threads);

}  // namespace fastcnn
