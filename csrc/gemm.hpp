// Dense matrix multiply: C = A·B (or C += A·B).
//
// Three paths, chosen by shape alone. A few rows against a transposed B (a
// dense layer's input gradient at batch 1) take dot products along k, lanes
// over k, B read in place. Small products, and those with a short side (a
// dense layer's batch of 64, its 10 outputs, a k of 64), read A and B in
// place: A broadcast from its rows, B's rows loaded as vectors, the whole k in
// one pass (one row: k split over 4 accumulators, for FMA latency). Larger
// ones are blocked BLIS-style: a kc×nc panel of B is packed, then MC×kc blocks
// of A, then MR×NR register tiles, each MR×kc micro-panel of A held in L1
// while a column group of B streams from L2. Block sizes come from this CPU's
// caches (tuning.hpp), the micro-kernels from its SIMD features (AVX-512,
// AVX2+FMA, or portable code). A and B are read through (row stride, column
// stride) pairs, so transposed and sliced operands need no copy; C is
// row-major with leading dimension ldc.
#pragma once

#include <cstdint>

namespace fastcnn {

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
