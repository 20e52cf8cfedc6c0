// The GEMM's inner kernels, written once over an instruction set (see
// simd_lanes.hpp) and instantiated in gemm.cpp inside a function built for
// each set. Every C element is one register's sum over k in increasing order
// (a product of one row: 4 interleaved sums, added pairwise; the dot path:
// one per lane, added as a tree), added to C (or written) once per k-step.
// The path and k-steps follow from the shape alone, and every tile or thread
// sums an element the same way: results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

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

// The last vector of the unpacked path's tiles when the columns left fit in
// half a vector: AVX-512's 256-bit registers (masked with AVX-512VL), so a
// dense layer's 10 float64 outputs take 8 + 4 lanes, not 8 + 8. (Zen 4 and
// others run a 512-bit FMA as two 256-bit halves: 3 halves per step, not 4.)
template <class Isa, typename T>
struct HalfLanes {
    using type = typename Isa::template Lanes<T>;  // no narrower vector: a whole one
};
#if FASTCNN_X86_DISPATCH
template <typename T>
struct Avx512HalfLanes {
    static constexpr int L = 32 / int(sizeof(T));
    using V = Vec<T, L>;
    using Mask = __mmask8;
    static FASTCNN_INLINE Mask mask(int lanes) { return lanes >= 8 ? Mask(0xff) : Mask((1u << lanes) - 1); }
    static FASTCNN_INLINE_AVX512 void load(V& v, const T* p, Mask m) {
        if constexpr (sizeof(T) == 4)
            v = _mm256_maskz_loadu_ps(m, p);
        else
            v = _mm256_maskz_loadu_pd(m, p);
    }
    static FASTCNN_INLINE_AVX512 void store(T* p, const V& v, Mask m) {
        if constexpr (sizeof(T) == 4)
            _mm256_mask_storeu_ps(p, m, v);
        else
            _mm256_mask_storeu_pd(p, m, v);
    }
};
template <typename T>
struct HalfLanes<Avx512Isa, T> {
    using type = Avx512HalfLanes<T>;
};
#endif

// A tile's row of B is NF whole vectors then one `Tail` vector (a whole one
// or HalfLanes) of which `last` lanes are used.
// sum[i] += a[i]·(B's row) for one k-step, then a and b move to the next.
// (A function, not a lambda: a lambda would not get the instruction set's target.)
template <class Isa, typename T, int R, int NF, class Tail>
FASTCNN_INLINE void small_step(typename Isa::template Lanes<T>::V (&sum)[R][NF + 1],
                               typename Tail::V (&tail)[R], const T*& a, int64_t a_row_stride,
                               int64_t a_col_stride, const T*& b, int64_t ldb,
                               typename Tail::Mask last) {
    using V = typename Isa::template Lanes<T>::V;
    constexpr int L = Isa::template Lanes<T>::L;
    V row[NF + 1];
#pragma GCC unroll 4
    for (int j = 0; j < NF; ++j) row[j] = load_vector<V>(b + j * L);
    typename Tail::V row_tail;
    Tail::load(row_tail, b + NF * L, last);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
        const T scale = a[i * a_row_stride];
#pragma GCC unroll 4
        for (int j = 0; j < NF; ++j) sum[i][j] += row[j] * scale;
        tail[i] += row_tail * scale;
    }
    a += a_col_stride;
    b += ldb;
}

// C[R×(NF vectors + a Tail)] (=|+=) A[R×k]·B[k×(the same)] read in place: A
// broadcast from its rows (any strides), B's rows loaded as vectors, the whole
// k in one pass, C written once. With S > 1 the k-steps p ≡ s (mod S) go to
// their own accumulators, added pairwise at the end: a single row (a batch of
// one) then has S independent chains of FMAs instead of one chain as long as k.
template <class Isa, typename T, int R, int NF, class Tail, int S = 1>
FASTCNN_INLINE void small_tile(int64_t k, const T* a, int64_t a_row_stride, int64_t a_col_stride,
                               const T* b, int64_t ldb, typename Tail::Mask last, T* __restrict c,
                               int64_t ldc, bool accumulate) {
    using V = typename Isa::template Lanes<T>::V;
    using VT = typename Tail::V;
    constexpr int L = Isa::template Lanes<T>::L;
    V acc[S][R][NF + 1] = {};
    VT tail[S][R] = {};
    int64_t p = 0;
    for (; p + S <= k; p += S)
#pragma GCC unroll 8
        for (int s = 0; s < S; ++s)
            small_step<Isa, T, R, NF, Tail>(acc[s], tail[s], a, a_row_stride, a_col_stride, b, ldb, last);
#pragma GCC unroll 8
    for (int s = 0; s + 1 < S; ++s)  // constant indices: acc stays in registers
        if (p + s < k)
            small_step<Isa, T, R, NF, Tail>(acc[s], tail[s], a, a_row_stride, a_col_stride, b, ldb, last);
#pragma GCC unroll 8
    for (int half = S / 2; half > 0; half /= 2)
#pragma GCC unroll 8
        for (int s = 0; s < half; ++s)
#pragma GCC unroll 16
            for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
                for (int j = 0; j < NF; ++j) acc[s][i][j] += acc[s + half][i][j];
                tail[s][i] += tail[s + half][i];
            }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
        T* out = c + i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < NF; ++j) {
            if (accumulate) acc[0][i][j] = load_vector<V>(out + j * L) + acc[0][i][j];
            store_vector(out + j * L, acc[0][i][j]);
        }
        if (accumulate) {
            VT old;
            Tail::load(old, out + NF * L, last);
            tail[0][i] += old;
        }
        Tail::store(out + NF * L, tail[0][i], last);
    }
}

// The rows' tiles of one block of columns: as many R-row tiles as fit, then
// one tile of the rows left.
template <class Isa, typename T, int NF, class Tail, int R>
FASTCNN_INLINE void small_rows(int64_t rows, int64_t k, const T* a, int64_t a_row_stride,
                               int64_t a_col_stride, const T* b, int64_t ldb,
                               typename Tail::Mask last, T* c, int64_t ldc, bool accumulate) {
    for (; rows >= R; rows -= R, a += R * a_row_stride, c += R * ldc)
        small_tile<Isa, T, R, NF, Tail>(k, a, a_row_stride, a_col_stride, b, ldb, last, c, ldc,
                                        accumulate);
    if constexpr (R > 1)
        if (rows > 0)
            small_rows<Isa, T, NF, Tail, R - 1>(rows, k, a, a_row_stride, a_col_stride, b, ldb, last,
                                                c, ldc, accumulate);
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

// One block of columns, NF whole vectors and a Tail of `tail_lanes` lanes
// wide: small_rows, or for a product of one row (a batch of one) one tile
// that splits its k (kGemmRowSplits).
template <class Isa, typename T, int NF, class Tail, int R>
FASTCNN_INLINE void small_columns(bool one_row, int64_t rows, int64_t k, const T* a,
                                  int64_t a_row_stride, int64_t a_col_stride, const T* b,
                                  int64_t ldb, int tail_lanes, T* c, int64_t ldc, bool accumulate) {
    const auto last = Tail::mask(tail_lanes);
    if (one_row)
        small_tile<Isa, T, 1, NF, Tail, kGemmRowSplits>(k, a, a_row_stride, a_col_stride, b, ldb,
                                                        last, c, ldc, accumulate);
    else
        small_rows<Isa, T, NF, Tail, R>(rows, k, a, a_row_stride, a_col_stride, b, ldb, last, c, ldc,
                                        accumulate);
}

// The same with the tail a half vector when it fits in one.
template <class Isa, typename T, int NV, int R>
FASTCNN_INLINE void small_columns_any_tail(bool one_row, int64_t rows, int64_t k, const T* a,
                                           int64_t a_row_stride, int64_t a_col_stride, const T* b,
                                           int64_t ldb, int tail_lanes, T* c, int64_t ldc,
                                           bool accumulate) {
    using Whole = typename Isa::template Lanes<T>;
    using Half = typename HalfLanes<Isa, T>::type;
    if (Half::L < Whole::L && tail_lanes <= Half::L)
        small_columns<Isa, T, NV - 1, Half, R>(one_row, rows, k, a, a_row_stride, a_col_stride, b,
                                               ldb, tail_lanes, c, ldc, accumulate);
    else
        small_columns<Isa, T, NV - 1, Whole, R>(one_row, rows, k, a, a_row_stride, a_col_stride, b,
                                                ldb, tail_lanes, c, ldc, accumulate);
}

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
        const int tail = int(width - (vectors - 1) * L);
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
            const bool accumulate = s.accumulate || pc > 0, one_row = s.m == 1;
            const int64_t rows = row1 - row0;
            const int64_t ars = s.a.row_stride, acs = s.a.col_stride, ldc = s.ldc;
            constexpr int narrow = kRegisters == 32 ? kGemmSmallRowsNarrow : kGemmSmallRowsWide;
            // (No lambdas here: they would not get the instruction set's target.)
            switch (vectors) {
                case 1:
                    small_columns_any_tail<Isa, T, 1, kGemmSmallRowsNarrow>(
                        one_row, rows, kc, a, ars, acs, b, ldb, tail, c, ldc, accumulate);
                    break;
                case 2:
                    small_columns_any_tail<Isa, T, 2, narrow>(one_row, rows, kc, a, ars, acs, b, ldb,
                                                              tail, c, ldc, accumulate);
                    break;
                case 3:
                    if constexpr (MaxNV >= 3)
                        small_columns_any_tail<Isa, T, 3, kGemmSmallRowsWide>(
                            one_row, rows, kc, a, ars, acs, b, ldb, tail, c, ldc, accumulate);
                    break;
                default:
                    if constexpr (MaxNV >= 4)
                        small_columns_any_tail<Isa, T, 4, kGemmSmallRowsWide>(
                            one_row, rows, kc, a, ars, acs, b, ldb, tail, c, ldc, accumulate);
                    break;
            }
        }
    }
}

// a = the sums of a's lanes l and l + H in the lanes l of bit H clear, and of
// b's lanes l − H and l in those of bit H set: one step of sum_lanes.
template <typename T, int L, int H, int... l>
FASTCNN_INLINE void fold_lanes(Vec<T, L>& a, const Vec<T, L>& b, std::integer_sequence<int, l...>) {
#if defined(__clang__)
    a = __builtin_shufflevector(a, b, ((l & H) ? L + l - H : l)...) +
        __builtin_shufflevector(a, b, ((l & H) ? L + l : l + H)...);
#else
    using Index = Vec<std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, L>;
    const Index low = {((l & H) ? L + l - H : l)...}, high = {((l & H) ? L + l : l + H)...};
    a = __builtin_shuffle(a, b, low) + __builtin_shuffle(a, b, high);
#endif
}

// sums[0][j] = the sum of sums[j]'s lanes, for every j < L: lanes l and l + H
// added for H = L/2, …, 1 (a tree, the same for every j), 2(L − 1) shuffles.
template <typename T, int L, int H = L / 2>
FASTCNN_INLINE void sum_lanes(Vec<T, L> (&sums)[L]) {
#pragma GCC unroll 16
    for (int r = 0; r < H; ++r)
        fold_lanes<T, L, H>(sums[r], sums[r + H], std::make_integer_sequence<int, L>{});
    if constexpr (H > 1) sum_lanes<T, L, H / 2>(sums);
}

// c[j] (=|+=) Σ_p a[p]·bt[j·ldbt + p] for j < width ≤ L: a row of A against
// `width` rows of Bᵀ, both contiguous along k, lanes over k. Each lane sums
// the k-steps p ≡ lane (mod L) in increasing order, then sum_lanes adds the
// lanes: every element the same way, whichever tile or thread computes it.
template <class Isa, typename T>
FASTCNN_INLINE void dot_row(int64_t k, const T* __restrict a, const T* __restrict bt, int64_t ldbt,
                            int64_t width, T* __restrict c, bool accumulate) {
    using Ln = typename Isa::template Lanes<T>;
    using V = typename Ln::V;
    constexpr int L = Ln::L;
    const T* row[L];
    for (int j = 0; j < L; ++j) row[j] = bt + (j < width ? j : 0) * ldbt;  // spare lanes: row 0
    V acc[L] = {};
    int64_t p = 0;
    for (; p + L <= k; p += L) {
        const V x = load_vector<V>(a + p);
#pragma GCC unroll 16
        for (int j = 0; j < L; ++j) acc[j] += x * load_vector<V>(row[j] + p);
    }
    if (p < k) {
        const auto mask = Ln::mask(int(k - p));
        V x;
        Ln::load(x, a + p, mask);
#pragma GCC unroll 16
        for (int j = 0; j < L; ++j) {
            V y;
            Ln::load(y, row[j] + p, mask);
            acc[j] += x * y;
        }
    }
    sum_lanes<T, L>(acc);
    const auto out = Ln::mask(int(width));
    if (accumulate) {
        V old;
        Ln::load(old, c, out);
        acc[0] += old;
    }
    Ln::store(c, acc[0], out);
}

// Rows [row0, row1) × columns [col0, col1) of C (=|+=) A·B where B's columns
// are contiguous along k (B = Wᵀ, W row-major): dot products, nothing of B
// copied. A row whose k is strided is first copied to `scratch` (k values).
template <class Isa, typename T>
FASTCNN_INLINE void dot_block(const SmallProduct<T>& s, int64_t row0, int64_t row1, int64_t col0,
                              int64_t col1, T* scratch) {
    constexpr int L = Isa::template Lanes<T>::L;
    for (int64_t i = row0; i < row1; ++i) {
        const T* a = s.a.data + i * s.a.row_stride;
        if (s.a.col_stride != 1) {
            for (int64_t p = 0; p < s.k; ++p) scratch[p] = a[p * s.a.col_stride];
            a = scratch;
        }
        for (int64_t jb = col0; jb < col1; jb += L)
            dot_row<Isa, T>(s.k, a, s.b.data + jb * s.b.col_stride, s.b.col_stride,
                            std::min<int64_t>(L, col1 - jb), s.c + i * s.ldc + jb, s.accumulate);
    }
}

}  // namespace fastcnn
#endif
