#include "gemm.hpp"

#include <algorithm>
#include <utility>
#include <atomic>
#include <stdexcept>

#include "parallel.hpp"
#include "simd.hpp"

namespace fastcnn {
namespace {

// Products smaller than this many multiply-adds stay on one thread.
constexpr int64_t kMinParallelWork = int64_t(1) << 20;
constexpr int kMaxTile = 12 * 32;  // the largest MR×NR below
// A thread packs at least this many values of B.
constexpr int64_t kMinPackWork = int64_t(1) << 16;
// Products with at most this many rows skip packing (see gemm_few_rows).
constexpr int64_t kFewRows = 2;

// tile[MR×NR] = Σ_p a[p·MR + i]·b[p·NR + j] over packed panels, NR = NV·LANES.
// Written once and instantiated per SIMD path: inlined into a function built
// for that path, the vectors become zmm/ymm/xmm registers.
#if FASTCNN_VECTORS
template <typename T, int MR, int NV, int LANES>
FASTCNN_INLINE void tile_product(int64_t kc, const T* __restrict a, const T* __restrict b,
                                 T* __restrict tile) {
    Vec<T, LANES> acc[MR][NV] = {};
    for (int64_t p = 0; p < kc; ++p) {
        Vec<T, LANES> row[NV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) __builtin_memcpy(&row[j], b + j * LANES, sizeof(row[j]));
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const T scale = a[i];
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[i][j] += row[j] * scale;
        }
        a += MR;
        b += NV * LANES;
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j)
            __builtin_memcpy(tile + (i * NV + j) * LANES, &acc[i][j], sizeof(acc[i][j]));
}
#else
template <typename T, int MR, int NV, int LANES>
inline void tile_product(int64_t kc, const T* a, const T* b, T* tile) {
    constexpr int NR = NV * LANES;
    T acc[MR * NR] = {};
    for (int64_t p = 0; p < kc; ++p, a += MR, b += NR)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i * NR + j] += a[i] * b[j];
    for (int i = 0; i < MR * NR; ++i) tile[i] = acc[i];
}
#endif

template <typename T>
struct MicroKernel {
    int mr;
    int nr;
    void (*run)(int64_t kc, const T* a, const T* b, T* tile);
};

// Portable path: 16-byte vectors (SSE2 on x86-64, NEON on ARM).
void float_generic(int64_t kc, const float* a, const float* b, float* tile) {
    tile_product<float, 6, 2, 4>(kc, a, b, tile);
}
void double_generic(int64_t kc, const double* a, const double* b, double* tile) {
    tile_product<double, 6, 2, 2>(kc, a, b, tile);
}

#if FASTCNN_X86_DISPATCH
// 6×2 ymm accumulators fill 12 of AVX2's 16 registers; 12×2 zmm fill 24 of 32.
FASTCNN_TARGET_AVX2 void float_avx2(int64_t kc, const float* a,
                                                    const float* b, float* tile) {
    tile_product<float, 6, 2, 8>(kc, a, b, tile);
}
FASTCNN_TARGET_AVX2 void double_avx2(int64_t kc, const double* a,
                                                     const double* b, double* tile) {
    tile_product<double, 6, 2, 4>(kc, a, b, tile);
}
FASTCNN_TARGET_AVX512 void float_avx512(int64_t kc, const float* a,
                                                     const float* b, float* tile) {
    tile_product<float, 12, 2, 16>(kc, a, b, tile);
}
FASTCNN_TARGET_AVX512 void double_avx512(int64_t kc, const double* a,
                                                      const double* b, double* tile) {
    tile_product<double, 12, 2, 8>(kc, a, b, tile);
}
#endif

template <typename T>
MicroKernel<T> micro_kernel(Simd simd);

template <>
MicroKernel<float> micro_kernel<float>(Simd simd) {
#if FASTCNN_X86_DISPATCH
    if (simd == Simd::avx512) return {12, 32, float_avx512};
    if (simd == Simd::avx2) return {6, 16, float_avx2};
#endif
    (void)simd;
    return {6, 8, float_generic};
}

template <>
MicroKernel<double> micro_kernel<double>(Simd simd) {
#if FASTCNN_X86_DISPATCH
    if (simd == Simd::avx512) return {12, 16, double_avx512};
    if (simd == Simd::avx2) return {6, 8, double_avx2};
#endif
    (void)simd;
    return {6, 4, double_generic};
}

int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

// The share of a tiled extent that is real work, not padding.
double used(int64_t extent, int64_t tile) {
    return extent <= 0 ? 1.0 : double(extent) / double(round_up(extent, tile));
}

template <typename T>
struct OutputRef {
    T* data;
    int64_t row_stride, col_stride;
};

// Copies rows [row0, row0+rows) × columns [col0, col0+kc) of A into panels of
// mr rows, each stored column by column (mr values per column, zero-padded).
template <typename T>
void pack_a(const MatrixRef<T>& a, int64_t row0, int64_t rows, int64_t col0, int64_t kc,
            int mr, T* out) {
    for (int64_t ir = 0; ir < rows; ir += mr) {
        const int64_t height = std::min<int64_t>(mr, rows - ir);
        for (int64_t p = 0; p < kc; ++p, out += mr) {
            const T* src = a.data + (row0 + ir) * a.row_stride + (col0 + p) * a.col_stride;
            for (int64_t i = 0; i < height; ++i) out[i] = src[i * a.row_stride];
            for (int64_t i = height; i < mr; ++i) out[i] = T(0);
        }
    }
}

// Copies rows [row0, row0+kc) × columns [col0, col0+cols) of B into panels of
// nr columns, each stored row by row (nr values per row, zero-padded).
template <typename T>
void pack_b(const MatrixRef<T>& b, int64_t row0, int64_t kc, int64_t col0, int64_t cols,
            int nr, T* out) {
    for (int64_t jr = 0; jr < cols; jr += nr) {
        const int64_t width = std::min<int64_t>(nr, cols - jr);
        for (int64_t p = 0; p < kc; ++p, out += nr) {
            const T* src = b.data + (row0 + p) * b.row_stride + (col0 + jr) * b.col_stride;
            for (int64_t j = 0; j < width; ++j) out[j] = src[j * b.col_stride];
            for (int64_t j = width; j < nr; ++j) out[j] = T(0);
        }
    }
}

// Adds (or writes) one micro-kernel tile into C, clipped at C's edges.
template <typename T>
void store_tile(const T* tile, int nr, int64_t height, int64_t width, T* dst,
                const OutputRef<T>& c, bool overwrite) {
    for (int64_t i = 0; i < height; ++i) {
        const T* src = tile + i * nr;
        T* out = dst + i * c.row_stride;
        if (c.col_stride == 1 && overwrite)
            std::copy(src, src + width, out);
        else if (c.col_stride == 1)
            for (int64_t j = 0; j < width; ++j) out[j] += src[j];
        else if (overwrite)
            for (int64_t j = 0; j < width; ++j) out[j * c.col_stride] = src[j];
        else
            for (int64_t j = 0; j < width; ++j) out[j * c.col_stride] += src[j];
    }
}

// C = (or +=) A·B. For each KC×NC panel of B, packed once, the work is split
// over threads by panels of MR rows of C (each thread packing its own rows of
// A) or, when C has too few rows for that, by panels of NR columns (A packed
// once). Every element's sum runs over k in the same order either way.
template <typename T>
void gemm_blocked(const MicroKernel<T>& kernel, int64_t m, int64_t n, int64_t k,
                  const MatrixRef<T>& a, const MatrixRef<T>& b, const OutputRef<T>& c,
                  bool accumulate, bool allow_threads) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) c.data[i * c.row_stride + j * c.col_stride] = 0;
        return;
    }
    const int mr = kernel.mr, nr = kernel.nr;
    const int64_t row_panels = (m + mr - 1) / mr;
    const bool threaded = allow_threads && num_threads() > 1 && m * n * k >= 2 * kMinParallelWork;
    const bool split_rows = row_panels >= 2 * num_threads();
    std::vector<T> packed_b(std::min(kGemmNC, round_up(n, nr)) * std::min(kGemmKC, k));
    std::vector<T> packed_a(split_rows ? 0 : round_up(m, mr) * std::min(kGemmKC, k));

    for (int64_t jc = 0; jc < n; jc += kGemmNC) {
        const int64_t nc = std::min(kGemmNC, n - jc);
        for (int64_t pc = 0; pc < k; pc += kGemmKC) {
            const int64_t kc = std::min(kGemmKC, k - pc);
            // The panel of B is packed by all threads, a share of its columns each.
            auto pack = [&](int64_t first, int64_t last) {
                const int64_t col0 = first * nr, cols = std::min(last * nr, nc) - col0;
                pack_b(b, pc, kc, jc + col0, cols, nr, packed_b.data() + col0 * kc);
            };
            const int64_t b_panels = (nc + nr - 1) / nr;
            if (threaded)
                parallel_for(b_panels, kMinPackWork / (int64_t(nr) * kc) + 1, pack);
            else
                pack(0, b_panels);
            const bool overwrite = !accumulate && pc == 0;
            // Tiles of rows [ir0, ir1) × columns [jr0, jr1) of this panel of C,
            // with those rows of A packed at `a_rows`.
            auto tiles = [&](const T* a_rows, int64_t ir0, int64_t ir1, int64_t jr0, int64_t jr1) {
                alignas(64) T tile[kMaxTile];
                for (int64_t jr = jr0; jr < jr1; jr += nr)
                    for (int64_t ir = ir0; ir < ir1; ir += mr) {
                        kernel.run(kc, a_rows + (ir - ir0) * kc, packed_b.data() + jr * kc, tile);
                        store_tile(tile, nr, std::min<int64_t>(mr, ir1 - ir),
                                   std::min<int64_t>(nr, jr1 - jr),
                                   c.data + ir * c.row_stride + (jc + jr) * c.col_stride, c,
                                   overwrite);
                    }
            };
            if (split_rows) {
                auto rows = [&](int64_t first, int64_t last) {
                    std::vector<T> own_a(std::min(kGemmMC, (last - first) * mr) * kc);
                    for (int64_t ic = first * mr; ic < std::min(last * mr, m); ic += kGemmMC) {
                        const int64_t mc = std::min({kGemmMC, m - ic, last * mr - ic});
                        pack_a(a, ic, mc, pc, kc, mr, own_a.data());
                        tiles(own_a.data(), ic, ic + mc, 0, nc);
                    }
                };
                const int64_t min_panels = kMinParallelWork / (int64_t(mr) * nc * kc) + 1;
                if (threaded)
                    parallel_for(row_panels, min_panels, rows);
                else
                    rows(0, row_panels);
            } else {
                pack_a(a, 0, m, pc, kc, mr, packed_a.data());
                const int64_t column_panels = (nc + nr - 1) / nr;
                auto columns = [&](int64_t first, int64_t last) {
                    tiles(packed_a.data(), 0, m, first * nr, std::min(last * nr, nc));
                };
                const int64_t min_panels = kMinParallelWork / (int64_t(nr) * m * kc) + 1;
                if (threaded)
                    parallel_for(column_panels, min_panels, columns);
                else
                    columns(0, column_panels);
            }
        }
    }
}

// A product with very few rows costs no more than packing B would: each row
// of C is built directly, as a sum of scaled rows of B when B's rows are
// contiguous, else as dot products with eight running partial sums.
template <typename T>
void gemm_few_rows(int64_t m, int64_t n, int64_t k, const MatrixRef<T>& a,
                   const MatrixRef<T>& b, T* c, int64_t ldc, bool accumulate) {
    constexpr int kParts = 8;
    for (int64_t i = 0; i < m; ++i) {
        T* row = c + i * ldc;
        if (!accumulate) std::fill(row, row + n, T(0));
        const T* a_row = a.data + i * a.row_stride;
        if (b.col_stride == 1) {
            // A block of kColumns sums stays in registers while p runs.
            constexpr int64_t kColumns = 32;
            for (int64_t j0 = 0; j0 < n; j0 += kColumns) {
                const int64_t width = std::min(kColumns, n - j0);
                T sums[kColumns] = {};
                for (int64_t p = 0; p < k; ++p) {
                    const T scale = a_row[p * a.col_stride];
                    const T* b_row = b.data + p * b.row_stride + j0;
                    if (width == kColumns)
                        for (int64_t j = 0; j < kColumns; ++j) sums[j] += scale * b_row[j];
                    else
                        for (int64_t j = 0; j < width; ++j) sums[j] += scale * b_row[j];
                }
                for (int64_t j = 0; j < width; ++j) row[j0 + j] += sums[j];
            }
            continue;
        }
        for (int64_t j = 0; j < n; ++j) {
            const T* b_column = b.data + j * b.col_stride;
            T parts[kParts] = {};
            int64_t p = 0;
            for (; p + kParts <= k; p += kParts)
                for (int q = 0; q < kParts; ++q)
                    parts[q] += a_row[(p + q) * a.col_stride] * b_column[(p + q) * b.row_stride];
            T sum = 0;
            for (; p < k; ++p) sum += a_row[p * a.col_stride] * b_column[p * b.row_stride];
            for (int q = 0; q < kParts; ++q) sum += parts[q];
            row[j] += sum;
        }
    }
}

}  // namespace

template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef<T> a, MatrixRef<T> b, T* c, int64_t ldc,
          bool accumulate, bool allow_threads) {
    if (m <= kFewRows) {
        gemm_few_rows(m, n, k, a, b, c, ldc, accumulate);
        return;
    }
    const MicroKernel<T> kernel = micro_kernel<T>(active_simd());
    OutputRef<T> out{c, ldc, 1};
    // Cᵀ = Bᵀ·Aᵀ fills the MR×NR tiles better when n is small against NR
    // (a 10-column C wastes 22 of 32 tile columns, but only 2 of 12 rows).
    if (used(n, kernel.mr) * used(m, kernel.nr) > 1.25 * used(m, kernel.mr) * used(n, kernel.nr)) {
        std::swap(m, n);
        std::swap(a, b);
        std::swap(a.row_stride, a.col_stride);
        std::swap(b.row_stride, b.col_stride);
        std::swap(out.row_stride, out.col_stride);
    }
    gemm_blocked(kernel, m, n, k, a, b, out, accumulate, allow_threads);
}

template void gemm<float>(int64_t, int64_t, int64_t, MatrixRef<float>, MatrixRef<float>,
                          float*, int64_t, bool, bool);
template void gemm<double>(int64_t, int64_t, int64_t, MatrixRef<double>, MatrixRef<double>,
                           double*, int64_t, bool, bool);

}  // namespace fastcnn
