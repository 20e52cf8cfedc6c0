// The GEMM's inner kernels, written once over an instruction set (see
// simd_lanes.hpp) and instantiated in gemm.cpp inside a function built for
// each set. Every C element is one register's sum over k in increasing order,
// added to C (or written) once per k-step, whichever tile or thread computes
// it: results do not depend on the tiling or the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "gemm.hpp"
#include "simd_lanes.hpp"
#include "tuning.hpp"

#if FASTCNN_VECTORS
namespace fastcnn {

template <typename T>
struct OutputRef {
    T* data;
    int64_t row_stride, col_stride;
};

// C[rows×width] (=|+=) Σ_p a[p·MR + i]·b[p·NR + j] over packed panels of A and
// B, NR = NV lanes-wide vectors; C is row-major with leading dimension ldc.
template <class Isa, typename T, int MR, int NV>
FASTCNN_INLINE void packed_tile(int64_t kc, const T* __restrict a, const T* __restrict b,
                                T* __restrict c, int64_t ldc, int64_t rows, int64_t width,
                                bool accumulate) {
    using Ln = typename Isa::template Lanes<T>;
    using V = typename Ln::V;
    constexpr int L = Ln::L;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) __builtin_prefetch(c + i * ldc, 1);
    V acc[MR][NV] = {};
    for (int64_t p = 0; p < kc; ++p) {
        V row[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) row[j] = load_vector<V>(b + j * L);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const T scale = a[i];
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[i][j] += row[j] * scale;
        }
        a += MR;
        b += NV * L;
    }
    if (rows == MR && width == NV * L) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) {
                T* out = c + i * ldc + j * L;
                if (accumulate) acc[i][j] = load_vector<V>(out) + acc[i][j];
                store_vector(out, acc[i][j]);
            }
        return;
    }
    for (int i = 0; i < MR && i < rows; ++i)
        for (int j = 0; j < NV && j * L < width; ++j) {
            const auto mask = Ln::mask(int(std::min<int64_t>(L, width - j * L)));
            T* out = c + i * ldc + j * L;
            if (accumulate) {
                V old;
                Ln::load(old, out, mask);
                acc[i][j] += old;
            }
            Ln::store(out, acc[i][j], mask);
        }
}

// Tiles of C[rows×cols] (=|+=) (packed A rows)·(packed B columns): for each MR
// rows, every NR columns in turn, so the A micro-panel stays in L1 while B
// streams from L2. C may be strided both ways (a transposed product).
template <class Isa, typename T, int MR, int NV>
FASTCNN_INLINE void packed_block(int64_t kc, const T* a, int64_t rows, const T* b, int64_t cols,
                                 const OutputRef<T>& c, bool accumulate) {
    constexpr int NR = NV * Isa::template Lanes<T>::L;
    for (int64_t ir = 0; ir < rows; ir += MR) {
        const int64_t height = std::min<int64_t>(MR, rows - ir);
        for (int64_t jr = 0; jr < cols; jr += NR) {
            const int64_t width = std::min<int64_t>(NR, cols - jr);
            const T* a_panel = a + ir * kc;
            const T* b_panel = b + jr * kc;
            T* out = c.data + ir * c.row_stride + jr * c.col_stride;
            if (c.col_stride == 1) {
                packed_tile<Isa, T, MR, NV>(kc, a_panel, b_panel, out, c.row_stride, height, width,
                                            accumulate);
                continue;
            }
            alignas(64) T tile[MR * NR];
            packed_tile<Isa, T, MR, NV>(kc, a_panel, b_panel, tile, NR, MR, NR, false);
            for (int64_t i = 0; i < height; ++i)
                for (int64_t j = 0; j < width; ++j) {
                    T& value = out[i * c.row_stride + j * c.col_stride];
                    value = accumulate ? value + tile[i * NR + j] : tile[i * NR + j];
                }
        }
    }
}

// Copies rows [row0, row0+rows) × columns [col0, col0+kc) of A into panels of
// MR rows, each stored column by column (MR values per column, zero-padded).
template <typename T, int MR>
FASTCNN_INLINE void pack_a(const MatrixRef<T>& a, int64_t row0, int64_t rows, int64_t col0,
                           int64_t kc, T* out) {
    for (int64_t ir = 0; ir < rows; ir += MR, out += MR * kc) {
        const int64_t height = std::min<int64_t>(MR, rows - ir);
        const T* src = a.data + (row0 + ir) * a.row_stride + col0 * a.col_stride;
        if (a.col_stride == 1 && height == MR) {  // rows contiguous: MR streams along k
            const T* row[MR];
            for (int i = 0; i < MR; ++i) row[i] = src + i * a.row_stride;
            for (int64_t p = 0; p < kc; ++p)
#pragma GCC unroll 16
                for (int i = 0; i < MR; ++i) out[p * MR + i] = row[i][p];
            continue;
        }
        for (int64_t p = 0; p < kc; ++p) {
            for (int64_t i = 0; i < height; ++i)
                out[p * MR + i] = src[i * a.row_stride + p * a.col_stride];
            for (int64_t i = height; i < MR; ++i) out[p * MR + i] = T(0);
        }
    }
}

// Copies rows [row0, row0+kc) × columns [col0, col0+cols) of B into panels of
// NR columns, each stored row by row (NR values per row, zero-padded).
template <typename T, int NR>
FASTCNN_INLINE void pack_b(const MatrixRef<T>& b, int64_t row0, int64_t kc, int64_t col0,
                           int64_t cols, T* out) {
    for (int64_t jr = 0; jr < cols; jr += NR, out += NR * kc) {
        const int64_t width = std::min<int64_t>(NR, cols - jr);
        const T* src = b.data + row0 * b.row_stride + (col0 + jr) * b.col_stride;
        if (b.col_stride == 1 && width == NR) {  // rows contiguous: copy NR at a time
            for (int64_t p = 0; p < kc; ++p)
#pragma GCC unroll 64
                for (int j = 0; j < NR; ++j) out[p * NR + j] = src[p * b.row_stride + j];
            continue;
        }
        if (width == NR) {  // columns contiguous: read each along k
            for (int64_t j = 0; j < NR; ++j)
                for (int64_t p = 0; p < kc; ++p) out[p * NR + j] = src[j * b.col_stride + p * b.row_stride];
            continue;
        }
        for (int64_t p = 0; p < kc; ++p) {
            for (int64_t j = 0; j < width; ++j)
                out[p * NR + j] = src[p * b.row_stride + j * b.col_stride];
            for (int64_t j = width; j < NR; ++j) out[p * NR + j] = T(0);
        }
    }
}

// C[R×(NV vectors)] (=|+=) A[R×k]·B[k×(NV vectors)] read in place: A broadcast
// from its rows (any strides), B's rows loaded as vectors (the last one
// partial, `last`), the whole k in one pass, C written once.
template <class Isa, typename T, int R, int NV>
FASTCNN_INLINE void small_tile(int64_t k, const T* __restrict a, int64_t a_row_stride,
                               int64_t a_col_stride, const T* __restrict b, int64_t ldb,
                               typename Isa::template Lanes<T>::Mask last, T* __restrict c,
                               int64_t ldc, bool accumulate) {
    using Ln = typename Isa::template Lanes<T>;
    using V = typename Ln::V;
    constexpr int L = Ln::L;
    V acc[R][NV] = {};
    for (int64_t p = 0; p < k; ++p) {
        V row[NV];
#pragma GCC unroll 4
        for (int j = 0; j + 1 < NV; ++j) row[j] = load_vector<V>(b + j * L);
        Ln::load(row[NV - 1], b + (NV - 1) * L, last);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const T scale = a[i * a_row_stride];
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[i][j] += row[j] * scale;
        }
        a += a_col_stride;
        b += ldb;
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
        T* out = c + i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j + 1 < NV; ++j) {
            if (accumulate) acc[i][j] = load_vector<V>(out + j * L) + acc[i][j];
            store_vector(out + j * L, acc[i][j]);
        }
        if (accumulate) {
            V old;
            Ln::load(old, out + (NV - 1) * L, last);
            acc[i][NV - 1] += old;
        }
        Ln::store(out + (NV - 1) * L, acc[i][NV - 1], last);
    }
}

// The rows' tiles of one block of columns: as many R-row tiles as fit, then
// one tile of the rows left.
template <class Isa, typename T, int NV, int R>
FASTCNN_INLINE void small_rows(int64_t rows, int64_t k, const T* a, int64_t a_row_stride,
                               int64_t a_col_stride, const T* b, int64_t ldb,
                               typename Isa::template Lanes<T>::Mask last, T* c, int64_t ldc,
                               bool accumulate) {
    for (; rows >= R; rows -= R, a += R * a_row_stride, c += R * ldc)
        small_tile<Isa, T, R, NV>(k, a, a_row_stride, a_col_stride, b, ldb, last, c, ldc, accumulate);
    if constexpr (R > 1)
        if (rows > 0)
            small_rows<Isa, T, NV, R - 1>(rows, k, a, a_row_stride, a_col_stride, b, ldb, last, c,
                                          ldc, accumulate);
}

// What the unpacked path multiplies: C[m×n] (=|+=) A·B, k split in steps of kc.
template <typename T>
struct SmallProduct {
    int64_t m, n, k, kc;
    MatrixRef<T> a, b;
    T* c;
    int64_t ldc;
    bool accumulate;
};

// Rows [row0, row1) × columns [col0, col1) of a SmallProduct, in blocks of
// up to MaxNV vectors of columns. When B's rows are not contiguous, each
// k-step's block of B is first copied to `scratch` (kc × MaxNV vectors).
template <class Isa, typename T, int MaxNV>
FASTCNN_INLINE void small_block(const SmallProduct<T>& s, int64_t row0, int64_t row1,
                                int64_t col0, int64_t col1, T* scratch) {
    using Ln = typename Isa::template Lanes<T>;
    constexpr int L = Ln::L, NB = MaxNV * L;
    constexpr int kRegisters = Isa::kBytes == 64 ? 32 : 16;
    for (int64_t jb = col0; jb < col1; jb += NB) {
        const int64_t width = std::min<int64_t>(NB, col1 - jb);
        const int vectors = int((width + L - 1) / L);
        const auto last = Ln::mask(int(width - (vectors - 1) * L));
        for (int64_t pc = 0; pc < s.k; pc += s.kc) {
            const int64_t kc = std::min(s.kc, s.k - pc);
            const T* b = s.b.data + pc * s.b.row_stride + jb * s.b.col_stride;
            int64_t ldb = s.b.row_stride;
            if (s.b.col_stride != 1) {
                for (int64_t j = 0; j < width; ++j)
                    for (int64_t p = 0; p < kc; ++p)
                        scratch[p * NB + j] = b[p * s.b.row_stride + j * s.b.col_stride];
                b = scratch;
                ldb = NB;
            }
            const T* a = s.a.data + row0 * s.a.row_stride + pc * s.a.col_stride;
            T* c = s.c + row0 * s.ldc + jb;
            const bool accumulate = s.accumulate || pc > 0;
            const int64_t rows = row1 - row0;
            const int64_t ars = s.a.row_stride, acs = s.a.col_stride, ldc = s.ldc;
            constexpr int narrow = kRegisters == 32 ? kGemmSmallRowsNarrow : kGemmSmallRowsWide;
            switch (vectors) {
                case 1:
                    small_rows<Isa, T, 1, kGemmSmallRowsNarrow>(rows, kc, a, ars, acs, b, ldb, last, c,
                                                                ldc, accumulate);
                    break;
                case 2:
                    small_rows<Isa, T, 2, narrow>(rows, kc, a, ars, acs, b, ldb, last, c, ldc, accumulate);
                    break;
                case 3:
                    if constexpr (MaxNV >= 3)
                        small_rows<Isa, T, 3, kGemmSmallRowsWide>(rows, kc, a, ars, acs, b, ldb, last, c,
                                                                  ldc, accumulate);
                    break;
                default:
                    if constexpr (MaxNV >= 4)
                        small_rows<Isa, T, 4, kGemmSmallRowsWide>(rows, kc, a, ars, acs, b, ldb, last, c,
                                                                  ldc, accumulate);
                    break;
            }
        }
    }
}

}  // namespace fastcnn
#endif
