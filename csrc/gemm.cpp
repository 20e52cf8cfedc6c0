#include "gemm.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

#include "common.hpp"
#include "cpu_caches.hpp"
#include "gemm_kernels.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace fastcnn {
namespace {

#if FASTCNN_VECTORS

// One instruction set's kernels for one element type.
template <typename T>
struct Kernels {
    int mr, nr;           // the packed path's register tile
    int64_t small_width;  // the unpacked path's widest block of columns
    int64_t lanes;        // one vector's elements: the dot path's columns per tile
    void (*pack_a)(const MatrixRef<T>&, int64_t row0, int64_t rows, int64_t col0, int64_t kc, T* out);
    void (*pack_b)(const MatrixRef<T>&, int64_t row0, int64_t kc, int64_t col0, int64_t cols, T* out);
    void (*packed_block)(int64_t kc, const T* a, int64_t rows, const T* b, int64_t cols,
                         const OutputRef<T>& c, bool accumulate);
    void (*small_block)(const SmallProduct<T>&, int64_t row0, int64_t row1, int64_t col0,
                        int64_t col1, T* scratch);
    void (*dot_block)(const SmallProduct<T>&, int64_t row0, int64_t row1, int64_t col0,
                      int64_t col1, T* scratch);
};

// Each set's entry points: the templates of gemm_kernels.hpp inlined into a
// function built for that set, packing included.
#define FASTCNN_GEMM_ENTRY_POINTS(PREFIX, TARGET, ISA, MR, NV, SMALL_NV)                        \
    template <typename T>                                                                       \
    TARGET void PREFIX##_pack_a(const MatrixRef<T>& a, int64_t row0, int64_t rows, int64_t col0, \
                                int64_t kc, T* out) {                                           \
        pack_a<T, MR>(a, row0, rows, col0, kc, out);                                            \
    }                                                                                           \
    template <typename T>                                                                       \
    TARGET void PREFIX##_pack_b(const MatrixRef<T>& b, int64_t row0, int64_t kc, int64_t col0,  \
                                int64_t cols, T* out) {                                         \
        pack_b<T, NV * ISA::Lanes<T>::L>(b, row0, kc, col0, cols, out);                         \
    }                                                                                           \
    template <typename T>                                                                       \
    TARGET void PREFIX##_packed_block(int64_t kc, const T* a, int64_t rows, const T* b,         \
                                      int64_t cols, const OutputRef<T>& c, bool accumulate) {   \
        packed_block<ISA, T, MR, NV>(kc, a, rows, b, cols, c, accumulate);                      \
    }                                                                                           \
    template <typename T>                                                                       \
    TARGET void PREFIX##_small_block(const SmallProduct<T>& s, int64_t row0, int64_t row1,      \
                                     int64_t col0, int64_t col1, T* scratch) {                  \
        small_block<ISA, T, SMALL_NV>(s, row0, row1, col0, col1, scratch);                      \
    }                                                                                           \
    template <typename T>                                                                       \
    TARGET void PREFIX##_dot_block(const SmallProduct<T>& s, int64_t row0, int64_t row1,        \
                                   int64_t col0, int64_t col1, T* scratch) {                    \
        dot_block<ISA, T>(s, row0, row1, col0, col1, scratch);                                  \
    }                                                                                           \
    template <typename T>                                                                       \
    Kernels<T> PREFIX##_kernels() {                                                             \
        constexpr int L = ISA::Lanes<T>::L;                                                     \
        return {MR,                    NV * L,                    SMALL_NV * L,                 \
                L,                     PREFIX##_pack_a<T>,        PREFIX##_pack_b<T>,           \
                PREFIX##_packed_block<T>, PREFIX##_small_block<T>, PREFIX##_dot_block<T>};      \
    }

// Tile sizes: see tuning.hpp.
FASTCNN_GEMM_ENTRY_POINTS(generic, , GenericIsa, kGemmTileRows16Registers, kGemmTileVectors, 2)
#if FASTCNN_X86_DISPATCH
FASTCNN_GEMM_ENTRY_POINTS(avx2, FASTCNN_TARGET_AVX2, Avx2Isa, kGemmTileRows16Registers,
                          kGemmTileVectors, 2)
FASTCNN_GEMM_ENTRY_POINTS(avx512, FASTCNN_TARGET_AVX512, Avx512Isa, kGemmTileRows32Registers,
                          kGemmTileVectors, kGemmSmallMaxVectors)
#endif
#undef FASTCNN_GEMM_ENTRY_POINTS

template <typename T>
const Kernels<T>& kernels_for(Simd simd) {
    static const Kernels<T> generic = generic_kernels<T>();
#if FASTCNN_X86_DISPATCH
    static const Kernels<T> avx2 = avx2_kernels<T>(), avx512 = avx512_kernels<T>();
    return for_simd(simd, avx512, avx2, generic);
#else
    (void)simd;
    return generic;
#endif
}

// Threads for `work` multiply-adds: one per kGemmMinThreadWork, at most all.
int team_for(int64_t work, bool allow_threads) {
    if (!allow_threads) return 1;
    return int(std::clamp<int64_t>(work / kGemmMinThreadWork, 1, num_threads()));
}

// body(0) alone for a team of one (no std::function, no pool), else parallel_claim.
template <typename Body>
void claim(int team, const Body& body) {
    if (team == 1)
        body(0);
    else
        parallel_claim(team, body);
}

// k split into equal steps of at most `most` (a multiple of 8): the steps
// depend on k and the caches only, so sums run in the same order whatever the
// thread count.
int64_t k_step(int64_t k, int64_t most) {
    const int64_t steps = ceil_div(k, most);
    return std::min(k, round_up(ceil_div(k, steps), 8));
}

// The unpacked path: chunks of (rows × one block of columns) claimed by the
// team's threads; each element is computed whole by one chunk.
template <typename T>
void gemm_small(const Kernels<T>& kernels, const SmallProduct<T>& product, int team) {
    const int64_t width = kernels.small_width;
    const int64_t column_blocks = ceil_div(product.n, width);
    const int64_t wanted = team == 1 ? 1 : kGemmChunksPerThread * team;
    // Chunks of whole row tiles (a multiple of both tile heights) when there
    // are rows enough, else of the narrow tiles' height.
    constexpr int64_t both = kGemmSmallRowsNarrow * kGemmSmallRowsWide / 2;
    const int64_t unit = ceil_div(product.m, both) * column_blocks >= wanted ? both : kGemmSmallRowsNarrow;
    const int64_t row_chunks = std::min(ceil_div(product.m, unit), ceil_div(wanted, column_blocks));
    const int64_t chunk_rows = round_up(ceil_div(product.m, row_chunks), unit);
    const int64_t chunks = ceil_div(product.m, chunk_rows) * column_blocks;
    const int64_t scratch_size = product.b.col_stride == 1 ? 0 : product.kc * width;
    T* scratch = thread_workspace<T>(scratch_size * team);
    std::atomic<int64_t> next{0};
    claim(team, [&](int thread) {
        for (int64_t chunk; (chunk = next.fetch_add(1)) < chunks;) {
            const int64_t row0 = chunk / column_blocks * chunk_rows, col0 = chunk % column_blocks * width;
            kernels.small_block(product, row0, std::min(product.m, row0 + chunk_rows), col0,
                                std::min(product.n, col0 + width), scratch + thread * scratch_size);
        }
    });
}

// The dot path: chunks of (one row × kGemmDotColumnVectors vectors of
// columns) claimed by the team's threads.
template <typename T>
void gemm_dot(const Kernels<T>& kernels, const SmallProduct<T>& product, int team) {
    const int64_t width = kGemmDotColumnVectors * kernels.lanes;
    const int64_t column_blocks = ceil_div(product.n, width), chunks = product.m * column_blocks;
    const int64_t scratch_size = product.a.col_stride == 1 ? 0 : round_up(product.k, 16);
    T* scratch = thread_workspace<T>(scratch_size * team);
    std::atomic<int64_t> next{0};
    claim(team, [&](int thread) {
        for (int64_t chunk; (chunk = next.fetch_add(1)) < chunks;) {
            const int64_t row = chunk / column_blocks, col0 = chunk % column_blocks * width;
            kernels.dot_block(product, row, row + 1, col0, std::min(product.n, col0 + width),
                              scratch + thread * scratch_size);
        }
    });
}

// How the packed path cuts one product: kc from L1, column groups from L2,
// the panel of B (all of k × nc columns) from L3. Shape and caches only,
// never the thread count, decide kc, so every sum runs in the same order.
struct BlockedPlan {
    int64_t kc, group, nc, mc_most;
};

template <typename T>
BlockedPlan plan_blocked(const Kernels<T>& kernels, int64_t n, int64_t k) {
    const CacheSizes& caches = cpu_caches();
    const int64_t mr = kernels.mr, nr = kernels.nr, size = sizeof(T);
    const int64_t kc_most = std::clamp(round_down(caches.l1d / (kGemmL1Share * mr * size), 16),
                                       kGemmMinKC, kGemmMaxKC);
    const int64_t kc = k_step(k, kc_most);
    const int64_t group = std::max(nr, round_down(caches.l2 / kGemmL2Share / (kc * size), nr));
    const int64_t panel = std::max(group, round_down(caches.l3 / kGemmL3Share / (k * size), nr));
    const int64_t mc_most = std::max(mr, round_down(caches.l2 / kGemmL2ShareA / (kc * size), mr));
    return {kc, group, std::min(round_up(n, nr), panel), mc_most};
}

// One k×nc panel of B and the work on it: packed in (kc × NR-column) strips
// claimed by the threads, then computed in blocks of rows claimed likewise.
// The counters say how much is done, so a thread waits only for work another
// has begun, never for a thread that is absent.
struct Phase {
    std::atomic<int64_t> next_pack{0}, packed{0}, next_chunk{0}, computed{0};
};

// The packed path. Phases run in order of columns of B; each packs all of k
// for its columns, so a block of rows, once claimed, runs through every
// k-step (in increasing order) without waiting for the other threads. Panels
// alternate between two buffers, so packing the next one overlaps the end of
// this one's work.
template <typename T>
void gemm_blocked(const Kernels<T>& kernels, int64_t m, int64_t n, int64_t k,
                  const MatrixRef<T>& a, const MatrixRef<T>& b, const OutputRef<T>& c,
                  bool accumulate, int team) {
    const BlockedPlan plan = plan_blocked(kernels, n, k);
    const int64_t mr = kernels.mr, nr = kernels.nr;
    const int64_t k_steps = ceil_div(k, plan.kc), phases = ceil_div(n, plan.nc);
    // Blocks of rows: a multiple of the team in number, each within one MR
    // tile of the others, so threads that start together end together.
    const int64_t groups = ceil_div(std::min(plan.nc, n), plan.group);
    const int64_t group = round_up(ceil_div(std::min(plan.nc, n), groups), nr);
    const int64_t tiles = ceil_div(m, mr);
    const int64_t wanted = std::max(team == 1 ? 1 : kGemmChunksPerThread * team, ceil_div(m, plan.mc_most));
    const int64_t row_blocks = std::min(tiles, round_up(wanted, team));
    const int64_t panel_size = k * plan.nc, own_a_size = ceil_div(tiles, row_blocks) * mr * plan.kc;
    const int64_t buffers = std::min<int64_t>(phases, 2);
    T* panels = thread_workspace<T>(buffers * panel_size + team * own_a_size);
    std::unique_ptr<Phase[]> progress(new Phase[phases]);
    auto first_row = [&](int64_t block) { return std::min(m, block * tiles / row_blocks * mr); };

    parallel_claim(team, [&](int thread) {
        T* own_a = panels + buffers * panel_size + thread * own_a_size;
        for (int64_t phase = 0; phase < phases; ++phase) {
            const int64_t jc = phase * plan.nc, cols = std::min(plan.nc, n - jc);
            T* panel = panels + phase % 2 * panel_size;
            Phase& now = progress[phase];
            // The buffer held the panel two phases back: wait until its work is done.
            if (phase >= 2) wait_until_reaches(progress[phase - 2].computed, row_blocks);
            // Strips of kc rows × NR columns, stored k-step after k-step.
            const int64_t b_panels = ceil_div(cols, nr), width = b_panels * nr, strips = k_steps * b_panels;
            const int64_t pack_step = std::max<int64_t>(1, strips / (kGemmChunksPerThread * team));
            for (int64_t first; (first = now.next_pack.fetch_add(pack_step)) < strips;) {
                const int64_t last = std::min(strips, first + pack_step);
                for (int64_t strip = first; strip < last;) {
                    const int64_t step = strip / b_panels, pc = step * plan.kc, kc = std::min(plan.kc, k - pc);
                    const int64_t j0 = strip % b_panels, j1 = std::min(b_panels, j0 + last - strip);
                    kernels.pack_b(b, pc, kc, jc + j0 * nr, std::min(j1 * nr, cols) - j0 * nr,
                                   panel + pc * width + j0 * nr * kc);
                    strip += j1 - j0;
                }
                now.packed.fetch_add(last - first, std::memory_order_release);
            }
            wait_until_reaches(now.packed, strips);
            for (int64_t block; (block = now.next_chunk.fetch_add(1)) < row_blocks;) {
                const int64_t ic = first_row(block), rows = first_row(block + 1) - ic;
                for (int64_t pc = 0; pc < k; pc += plan.kc) {
                    const int64_t kc = std::min(plan.kc, k - pc);
                    kernels.pack_a(a, ic, rows, pc, kc, own_a);
                    for (int64_t jg = 0; jg < cols; jg += group) {
                        const OutputRef<T> out{c.data + ic * c.row_stride + (jc + jg) * c.col_stride,
                                               c.row_stride, c.col_stride};
                        kernels.packed_block(kc, own_a, rows, panel + pc * width + jg * kc,
                                             std::min(group, cols - jg), out, accumulate || pc > 0);
                    }
                }
                now.computed.fetch_add(1, std::memory_order_release);
            }
        }
    });
}

// The share of a tiled extent that is real work, not padding.
double used(int64_t extent, int64_t tile) {
    return extent <= 0 ? 1.0 : double(extent) / double(round_up(extent, tile));
}

template <typename T>
void gemm_any(int64_t m, int64_t n, int64_t k, MatrixRef<T> a, MatrixRef<T> b, T* c, int64_t ldc,
              bool accumulate, bool allow_threads) {
    const Kernels<T>& kernels = kernels_for<T>(active_simd());
    // float64 runs at half float32's rate: its multiply-adds count double. A
    // product of a few rows waits on loads of B, not on FMAs: it counts as
    // kGemmLoadBoundRows rows.
    const int64_t rows_cost = std::max(m, kGemmLoadBoundRows);
    const int team = team_for(rows_cost * n * k * int64_t(sizeof(T) / sizeof(float)), allow_threads);
    // A few rows against Bᵀ (a dense layer's input gradient): copying B to
    // rows would cost more than m dot products along k, each k/L loads and
    // one sum across lanes.
    if (b.row_stride == 1 && b.col_stride != 1 &&
        m * (ceil_div(k, kernels.lanes) + kGemmDotLaneSumCost) <= k) {
        gemm_dot(kernels, SmallProduct<T>{m, n, k, k, a, b, c, ldc, accumulate}, team);
        return;
    }
    if (std::min({m, n, k}) <= kGemmSmallMaxSide || m * n * k <= kGemmSmallMaxWork) {
        const int64_t kc_most = std::max<int64_t>(
            8, round_down(cpu_caches().l2 / kGemmL2Share / (kernels.small_width * int64_t(sizeof(T))), 8));
        gemm_small(kernels, SmallProduct<T>{m, n, k, k_step(k, kc_most), a, b, c, ldc, accumulate}, team);
        return;
    }
    OutputRef<T> out{c, ldc, 1};
    // Cᵀ = Bᵀ·Aᵀ fills the MR×NR tiles better when n is small against NR.
    if (used(n, kernels.mr) * used(m, kernels.nr) > 1.25 * used(m, kernels.mr) * used(n, kernels.nr)) {
        std::swap(m, n);
        std::swap(a, b);
        std::swap(a.row_stride, a.col_stride);
        std::swap(b.row_stride, b.col_stride);
        std::swap(out.row_stride, out.col_stride);
    }
    gemm_blocked(kernels, m, n, k, a, b, out, accumulate, team);
}

#else

// Compilers without vector extensions: plain loops, each sum in k order.
template <typename T>
void gemm_any(int64_t m, int64_t n, int64_t k, MatrixRef<T> a, MatrixRef<T> b, T* c, int64_t ldc,
              bool accumulate, bool) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            T sum = 0;
            for (int64_t p = 0; p < k; ++p)
                sum += a.data[i * a.row_stride + p * a.col_stride] * b.data[p * b.row_stride + j * b.col_stride];
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
        }
}

#endif

}  // namespace

template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef<T> a, MatrixRef<T> b, T* c, int64_t ldc,
          bool accumulate, bool allow_threads) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
        return;
    }
    gemm_any(m, n, k, a, b, c, ldc, accumulate, allow_threads);
}

template void gemm<float>(int64_t, int64_t, int64_t, MatrixRef<float>, MatrixRef<float>,
                          float*, int64_t, bool, bool);
template void gemm<double>(int64_t, int64_t, int64_t, MatrixRef<double>, MatrixRef<double>,
                           double*, int64_t, bool, bool);

}  // namespace fastcnn
