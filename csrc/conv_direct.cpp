#include "conv_direct.hpp"

#include <algorithm>
#include <vector>

#include "common.hpp"
#include "conv.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

#if FASTCNN_VECTORS
namespace fastcnn {
namespace {

using tuning::kConvMinTaskWork;
using tuning::kDirectGroupBytes;

// One source image laid out for unit-stride vector loads. Each padded row that
// a window reads is kept, its columns split into stride phases:
// phased[c][row][q][t] = padded source at column t·stride_w + q. Tap j of
// output column ow then reads phase j % sw at t = ow + j / sw. Rows and phases
// no window reads are left out, so a stride far larger than the kernel costs
// no memory: window row i of output row oh is kept as row oh·min(sh, kh) + i.
// Holds `images` such images one after the other, in this thread's
// Scratch::image workspace.
template <typename T>
struct Phased {
    // The source columns landing in one phase: columns first, first + sw, …
    // (count of them) go to t = to, to + 1, … of that phase.
    struct Run {
        int64_t first, count, to;
    };
    int64_t row_step, rows;  // rows = (Ho − 1)·row_step + kh
    int64_t phases, width;   // phases = min(sw, kw); width per phase, with vector slack
    int64_t image_size;
    std::vector<Run> runs;              // one per phase
    std::vector<int64_t> tap_offset;    // tap j → (j % sw)·width + j / sw
    std::vector<int64_t> source_rows;   // source row h → its kept row, or −1
    std::vector<char> holds_source;     // kept row → whether a source row lands there
    T* data;

    Phased(const DirectShape& s, int64_t vector_width, int64_t tap_multiple, int64_t images)
        : row_step(std::min(s.stride_h, s.kernel_h)),
          rows((s.out_h - 1) * row_step + s.kernel_h),
          phases(std::min(s.stride_w, s.kernel_w)),
          width(round_up(s.out_w, vector_width) + (s.kernel_w - 1) / s.stride_w),
          image_size(s.channels * rows * phases * width),
          tap_offset(round_up(s.kernel_w, tap_multiple), 0),
          source_rows(s.height),
          holds_source(rows, 0),
          data(workspace<T>(Scratch::image, images * image_size)) {
        for (int64_t h = 0; h < s.height; ++h) {
            source_rows[h] = kept_row(s, h + s.top);
            if (source_rows[h] >= 0) holds_source[source_rows[h]] = 1;
        }
        for (int64_t q = 0; q < phases; ++q) {
            // Source column col lands at padded column col + left = t·sw + q.
            int64_t first = ((q - s.left) % s.stride_w + s.stride_w) % s.stride_w;
            if (first + s.left < 0) first += round_up(-(first + s.left), s.stride_w);
            const int64_t to = (first + s.left) / s.stride_w;
            const int64_t count = std::max<int64_t>(
                0, std::min(ceil_div(s.width - first, s.stride_w), width - to));
            runs.push_back({first, count, q * width + to});
        }
        for (int64_t j = 0; j < s.kernel_w; ++j)
            tap_offset[j] = (j % s.stride_w) * width + j / s.stride_w;
    }

    // A stride-1 correlation `s` reading the copy `whole` (stride 1 too) from
    // row `top` and column `left` on: its padding may be less than whole's.
    Phased(const DirectShape& s, const Phased& whole, int64_t top, int64_t left)
        : row_step(1), rows(whole.rows), phases(1), width(whole.width),
          image_size(whole.image_size),
          tap_offset(s.kernel_w),
          holds_source((s.out_h - 1) + s.kernel_h, 0),
          data(whole.data + top * whole.width + left) {
        for (int64_t j = 0; j < int64_t(tap_offset.size()); ++j) tap_offset[j] = j;
        for (int64_t h = 0; h < s.height; ++h)
            if (h + s.top >= 0 && h + s.top < int64_t(holds_source.size()))
                holds_source[h + s.top] = 1;
    }

    // Where padded row r is kept, or −1 if no window reads it.
    int64_t kept_row(const DirectShape& s, int64_t r) const {
        if (r < 0) return -1;
        const int64_t oh = r / s.stride_h, i = r % s.stride_h;
        const int64_t kept = s.stride_h <= s.kernel_h ? r : (i < s.kernel_h ? oh * s.kernel_h + i : -1);
        return kept < rows ? kept : -1;
    }

    void fill(const DirectShape& s, const T* image, int64_t slot = 0) {
        T* base = data + slot * image_size;
        std::fill(base, base + image_size, T(0));
        const int64_t row_size = phases * width;
        for (int64_t c = 0; c < s.channels; ++c)
            for (int64_t h = 0; h < s.height; ++h) {
                const int64_t r = source_rows[h];
                if (r < 0) continue;
                const T* src = image + (c * s.height + h) * s.width;
                T* dst = base + (c * rows + r) * row_size;
                for (const Run& run : runs) {
                    if (s.stride_w == 1) {
                        std::copy_n(src + run.first, run.count, dst + run.to);
                        continue;
                    }
                    for (int64_t t = 0; t < run.count; ++t)
                        dst[run.to + t] = src[run.first + t * s.stride_w];
                }
            }
    }

    // Window row i of output row oh, in channel c of image `slot`.
    const T* row(int64_t c, int64_t oh, int64_t i, int64_t slot = 0) const {
        return data + slot * image_size + (c * rows + oh * row_step + i) * phases * width;
    }
};

template <typename T>
struct ForwardArgs {
    const DirectShape* shape;
    const Phased<T>* source;
    const T* packed_w;  // [F / FB][C][kh][kw][FB], filters zero-padded to a multiple of FB
    const T* bias;
    T* y;               // one image's output (F, Ho, Wo), stored as `out` says
    const OutputLayout* out;
    bool relu;
};

template <typename T>
struct ColumnGradientArgs {
    const DirectShape* shape;
    const Phased<T>* source;  // source->images images
    const T* grad;            // their grad_y, each [F'][Ho][grad_width]:
    int64_t grad_width;       // rows zero-padded to whole vectors, filters to whole tiles
    int64_t images;
};

// Output rows [oh0, oh1) of one image in register tiles of FB filters × RB
// rows × NV vectors of L columns.
template <typename T, int L, int FB, int RB, int NV>
FASTCNN_INLINE void forward_rows(const ForwardArgs<T>& a, int64_t oh0, int64_t oh1) {
    using V = Vec<T, L>;
    const DirectShape& s = *a.shape;
    const int64_t patch = s.channels * s.kernel_h * s.kernel_w;
    const int64_t* taps = a.source->tap_offset.data();
    for (int64_t f0 = 0; f0 < s.filters; f0 += FB)
        for (int64_t oh = oh0; oh < oh1; oh += RB)
            for (int64_t ow0 = 0; ow0 < s.out_w; ow0 += NV * L) {
                V acc[FB][RB][NV] = {};
                // Window rows that read only zero padding (or zeros between
                // a dilated source's rows) for every row of the tile are
                // skipped: the input gradient's "full" correlation has many.
                uint64_t live = s.kernel_h > 64 ? ~uint64_t(0) : 0;
                for (int64_t i = 0; i < s.kernel_h && i < 64; ++i)
                    for (int r = 0; r < RB; ++r)
                        if (a.source->holds_source[std::min(oh + r, oh1 - 1) * a.source->row_step + i])
                            live |= uint64_t(1) << i;
                const T* wv = a.packed_w + f0 * patch;
                for (int64_t c = 0; c < s.channels; ++c)
                    for (int64_t i = 0; i < s.kernel_h; ++i) {
                        if (i < 64 && !(live >> i & 1)) {
                            wv += s.kernel_w * FB;
                            continue;
                        }
                        // Rows past oh1 repeat the last one; their sums are dropped.
                        const T* rows[RB];
#pragma GCC unroll 16
                        for (int r = 0; r < RB; ++r)
                            rows[r] = a.source->row(c, std::min(oh + r, oh1 - 1), i) + ow0;
                        for (int64_t j = 0; j < s.kernel_w; ++j, wv += FB) {
                            V x[RB][NV];
#pragma GCC unroll 16
                            for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
                                for (int v = 0; v < NV; ++v)
                                    __builtin_memcpy(&x[r][v], rows[r] + taps[j] + v * L,
                                                     sizeof(V));
#pragma GCC unroll 16
                            for (int f = 0; f < FB; ++f) {
                                const T weight = wv[f];
#pragma GCC unroll 16
                                for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
                                    for (int v = 0; v < NV; ++v) acc[f][r][v] += x[r][v] * weight;
                            }
                        }
                    }
                const int64_t width = std::min<int64_t>(NV * L, s.out_w - ow0);
                const int64_t filters = std::min<int64_t>(FB, s.filters - f0);
                const int64_t rows = std::min<int64_t>(RB, oh1 - oh);
                // Fixed bounds, fully unrolled, so acc stays in registers under every
                // compiler (clang spills it to the stack with run-time bounds).
#pragma GCC unroll 16
                for (int f = 0; f < FB; ++f)
#pragma GCC unroll 16
                    for (int r = 0; r < RB; ++r) {
                        if (f >= filters || r >= rows) continue;
                        T lanes[NV * L];
                        __builtin_memcpy(lanes, acc[f][r], sizeof(lanes));
                        const T bias = a.bias ? a.bias[f0 + f] : T(0);
                        T* out = a.y + (f0 + f) * a.out->plane + (oh + r) * a.out->row +
                                 ow0 * a.out->column;
                        auto store = [&](int64_t step) {
                            for (int64_t k = 0; k < width; ++k) {
                                const T value = lanes[k] + bias;
                                out[k * step] = a.relu ? relu_of(value) : value;
                            }
                        };
                        // Unit steps (all but the input gradient's stride phases)
                        // as a loop the compiler turns into vector stores.
                        if (a.out->column == 1)
                            store(1);
                        else
                            store(a.out->column);
                    }
            }
}

// The sum of a vector's lanes, halving the vector until two lanes remain.
template <typename T, int L>
FASTCNN_INLINE T lane_sum(const Vec<T, L>& v) {
    if constexpr (L == 2) {
        return v[0] + v[1];
    } else {
        Vec<T, L / 2> low, high;
        __builtin_memcpy(&low, &v, sizeof(low));
        __builtin_memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof(low), sizeof(high));
        return lane_sum<T, L / 2>(low + high);
    }
}

// grad_w[:, c, i] += the share of a group of images, for the window rows
// q = c·kh + i in [q0, q1): register tiles of FB filters × JB taps, each
// accumulating over all the group's output positions, lanes across output
// columns, then summed across lanes once.
template <typename T, int L, int FB, int JB>
FASTCNN_INLINE void weight_gradient(const ColumnGradientArgs<T>& a, int64_t q0, int64_t q1,
                                    T* grad_w) {
    using V = Vec<T, L>;
    const DirectShape& s = *a.shape;
    const int64_t* taps = a.source->tap_offset.data();
    const int64_t vectors = a.grad_width / L, plane = s.out_h * a.grad_width;
    const int64_t grad_image = round_up(s.filters, FB) * plane;
    // Lanes past the last output column must add nothing, even where the
    // source holds an inf or NaN: they are masked out of the last vector,
    // if it has such lanes.
    V lane = {};
    for (int l = 0; l < L; ++l) lane[l] = T(l);
    const auto keep = lane < T(s.out_w - (vectors - 1) * L);
    const int64_t masked = s.out_w % L ? vectors - 1 : vectors;
    for (int64_t q = q0; q < q1; ++q)
            for (int64_t f0 = 0; f0 < s.filters; f0 += FB)
                for (int64_t j0 = 0; j0 < s.kernel_w; j0 += JB) {
                    V acc[FB][JB] = {};
                    for (int64_t g = 0; g < a.images; ++g)
                    for (int64_t oh = 0; oh < s.out_h; ++oh) {
                        const T* source = a.source->row(q / s.kernel_h, oh, q % s.kernel_h, g);
                        const T* grad = a.grad + g * grad_image + f0 * plane + oh * a.grad_width;
                        for (int64_t v = 0; v < vectors; ++v) {
                            V g[FB], x[JB];
#pragma GCC unroll 16
                            for (int f = 0; f < FB; ++f)
                                __builtin_memcpy(&g[f], grad + f * plane + v * L, sizeof(V));
#pragma GCC unroll 8
                            for (int j = 0; j < JB; ++j)
                                __builtin_memcpy(&x[j], source + taps[j0 + j] + v * L, sizeof(V));
                            if (v == masked)
#pragma GCC unroll 8
                                for (int j = 0; j < JB; ++j) x[j] = keep ? x[j] : V{};
#pragma GCC unroll 16
                            for (int f = 0; f < FB; ++f)
#pragma GCC unroll 8
                                for (int j = 0; j < JB; ++j) acc[f][j] += g[f] * x[j];
                        }
                    }
                    const int64_t filters = std::min<int64_t>(FB, s.filters - f0);
                    const int64_t taps_here = std::min<int64_t>(JB, s.kernel_w - j0);
                    // Fixed bounds, fully unrolled: acc stays in registers (see above).
#pragma GCC unroll 16
                    for (int f = 0; f < FB; ++f)
#pragma GCC unroll 8
                        for (int j = 0; j < JB; ++j)
                            if (f < filters && j < taps_here)
                                grad_w[((f0 + f) * s.channels * s.kernel_h + q) * s.kernel_w +
                                       j0 + j] += lane_sum<T, L>(acc[f][j]);
                }
}

template <typename T>
struct ForwardTile {
    int filters, rows, vectors;
    void (*run)(const ForwardArgs<T>&, int64_t oh0, int64_t oh1);
};

template <typename T>
struct GradientTile {
    int filters, taps;
    void (*run)(const ColumnGradientArgs<T>&, int64_t q0, int64_t q1, T* grad_w);
};

// A tile keeps its accumulators and the operands of one step in registers:
// forward FB·RB·NV sums + RB·NV input vectors + a broadcast weight; gradient
// FB·JB sums + FB + JB operand vectors, within the path's `regs` registers.
constexpr int forward_rows_fit(int regs, int filters, int vectors) {
    return (regs - 2) / (vectors * (filters + 1));
}

// Per SIMD path and type, a list of tile shapes; each call takes the one that
// wastes the fewest lanes on its layer (see best_forward_tile). Shapes that
// do not fit the registers (0 rows) are never chosen.
#define FASTCNN_FORWARD_TILE(PATH, T, REGS, FB, NV)                             \
    ForwardTile<T> {                                                            \
        FB, forward_rows_fit(REGS, FB, NV), NV,                                 \
            PATH##_forward<FB, (forward_rows_fit(REGS, FB, NV) > 0 ? forward_rows_fit(REGS, FB, NV) : 1), NV> \
    }
#define FASTCNN_GRADIENT_TILE(PATH, T, FB, JB) \
    GradientTile<T> { FB, JB, PATH##_gradient<FB, JB> }
// Gradient tiles (FB, JB) with FB·JB + FB + JB within the register file.
#define FASTCNN_GRADIENT_TILES_16(PATH, T)                                                     \
    FASTCNN_GRADIENT_TILE(PATH, T, 1, 5), FASTCNN_GRADIENT_TILE(PATH, T, 2, 4),                \
        FASTCNN_GRADIENT_TILE(PATH, T, 2, 3), FASTCNN_GRADIENT_TILE(PATH, T, 3, 3),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 3, 2), FASTCNN_GRADIENT_TILE(PATH, T, 4, 2),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 4, 1), FASTCNN_GRADIENT_TILE(PATH, T, 6, 1),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 7, 1)
#define FASTCNN_GRADIENT_TILES_32(PATH, T)                                                     \
    FASTCNN_GRADIENT_TILE(PATH, T, 2, 5), FASTCNN_GRADIENT_TILE(PATH, T, 3, 5),                \
        FASTCNN_GRADIENT_TILE(PATH, T, 4, 5), FASTCNN_GRADIENT_TILE(PATH, T, 3, 4),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 4, 4), FASTCNN_GRADIENT_TILE(PATH, T, 5, 4),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 4, 3), FASTCNN_GRADIENT_TILE(PATH, T, 5, 3),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 6, 3), FASTCNN_GRADIENT_TILE(PATH, T, 7, 3),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 6, 2), FASTCNN_GRADIENT_TILE(PATH, T, 8, 2),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 9, 2), FASTCNN_GRADIENT_TILE(PATH, T, 8, 1),            \
        FASTCNN_GRADIENT_TILE(PATH, T, 12, 1), FASTCNN_GRADIENT_TILE(PATH, T, 15, 1)
#define FASTCNN_TILES(PATH, TARGET, T, L, REGS)                                                \
    template <int FB, int RB, int NV>                                                          \
    TARGET void PATH##_forward(const ForwardArgs<T>& a, int64_t oh0, int64_t oh1) {            \
        forward_rows<T, L, FB, RB, NV>(a, oh0, oh1);                                           \
    }                                                                                          \
    template <int FB, int JB>                                                                  \
    TARGET void PATH##_gradient(const ColumnGradientArgs<T>& a, int64_t q0, int64_t q1,         \
                                T* grad_w) {                                                   \
        weight_gradient<T, L, FB, JB>(a, q0, q1, grad_w);                                      \
    }                                                                                          \
    const ForwardTile<T> PATH##_forward_tiles[] = {                                            \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 12, 2), FASTCNN_FORWARD_TILE(PATH, T, REGS, 8, 2), \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 6, 2),  FASTCNN_FORWARD_TILE(PATH, T, REGS, 5, 2), \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 4, 2),  FASTCNN_FORWARD_TILE(PATH, T, REGS, 3, 2), \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 2, 2),  FASTCNN_FORWARD_TILE(PATH, T, REGS, 1, 2), \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 12, 1), FASTCNN_FORWARD_TILE(PATH, T, REGS, 8, 1), \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 6, 1),                                             \
        FASTCNN_FORWARD_TILE(PATH, T, REGS, 3, 1),  FASTCNN_FORWARD_TILE(PATH, T, REGS, 1, 1)};\
    const GradientTile<T> PATH##_gradient_tiles[] = {FASTCNN_GRADIENT_TILES_##REGS(PATH, T)};

#define FASTCNN_NO_TARGET
// 16 vector registers for SSE2/NEON and AVX2, 32 for AVX-512.
FASTCNN_TILES(float_generic, FASTCNN_NO_TARGET, float, 4, 16)
FASTCNN_TILES(double_generic, FASTCNN_NO_TARGET, double, 2, 16)
#if FASTCNN_X86_DISPATCH
FASTCNN_TILES(float_avx2, FASTCNN_TARGET_AVX2, float, 8, 16)
FASTCNN_TILES(double_avx2, FASTCNN_TARGET_AVX2, double, 4, 16)
FASTCNN_TILES(float_avx512, FASTCNN_TARGET_AVX512, float, 16, 32)
FASTCNN_TILES(double_avx512, FASTCNN_TARGET_AVX512, double, 8, 32)
#endif

template <typename T>
struct DirectKernels {
    int lanes;
    const ForwardTile<T>* forward;
    int forward_count;
    const GradientTile<T>* gradient;
    int gradient_count;
};

template <typename T, size_t F, size_t G>
DirectKernels<T> kernels_of(int lanes, const ForwardTile<T> (&forward)[F],
                            const GradientTile<T> (&gradient)[G]) {
    return {lanes, forward, int(F), gradient, int(G)};
}

template <typename T>
DirectKernels<T> direct_kernels();

template <>
DirectKernels<float> direct_kernels<float>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512)
        return kernels_of(16, float_avx512_forward_tiles, float_avx512_gradient_tiles);
    if (active_simd() == Simd::avx2)
        return kernels_of(8, float_avx2_forward_tiles, float_avx2_gradient_tiles);
#endif
    return kernels_of(4, float_generic_forward_tiles, float_generic_gradient_tiles);
}

template <>
DirectKernels<double> direct_kernels<double>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512)
        return kernels_of(8, double_avx512_forward_tiles, double_avx512_gradient_tiles);
    if (active_simd() == Simd::avx2)
        return kernels_of(4, double_avx2_forward_tiles, double_avx2_gradient_tiles);
#endif
    return kernels_of(2, double_generic_forward_tiles, double_generic_gradient_tiles);
}

// The share of a tiled extent that is real work, not padding.
double used(int64_t extent, int64_t tile) {
    return double(extent) / double((extent + tile - 1) / tile * tile);
}

// How much of a tile step's time goes to useful multiply-adds: a step costs
// its multiply-adds plus half a multiply-add per vector load.
double tile_score(double multiply_adds, double loads, double use) {
    return multiply_adds * use / (multiply_adds + 0.5 * loads);
}

template <typename T>
const ForwardTile<T>& best_forward_tile(const DirectKernels<T>& k, const DirectShape& s) {
    int best = -1;
    double best_score = 0;
    for (int t = 0; t < k.forward_count; ++t) {
        const ForwardTile<T>& tile = k.forward[t];
        if (tile.rows <= 0) continue;
        const double use = used(s.filters, tile.filters) * used(s.out_h, tile.rows) *
                           used(s.out_w, int64_t(tile.vectors) * k.lanes);
        const double score = tile_score(tile.filters * tile.rows * tile.vectors,
                                        tile.rows * tile.vectors + tile.filters, use);
        if (best < 0 || score > best_score + 1e-9) best = t, best_score = score;
    }
    return k.forward[best];
}

template <typename T>
const GradientTile<T>& best_gradient_tile(const DirectKernels<T>& k, const DirectShape& s) {
    int best = -1;
    double best_score = 0;
    for (int t = 0; t < k.gradient_count; ++t) {
        const GradientTile<T>& tile = k.gradient[t];
        const double use = used(s.filters, tile.filters) * used(s.kernel_w, tile.taps);
        const double score =
            tile_score(tile.filters * tile.taps, tile.filters + tile.taps, use);
        if (best < 0 || score > best_score + 1e-9) best = t, best_score = score;
    }
    return k.gradient[best];
}

// w (F, C, kh, kw) → [F / FB][C][kh][kw][FB], the missing filters zero, in
// `packed`, by default this thread's Scratch::packed_weights workspace.
template <typename T>
const T* pack_filters(const DirectShape& s, const T* w, int64_t block, T* packed = nullptr) {
    const int64_t patch = s.channels * s.kernel_h * s.kernel_w;
    const int64_t size = round_up(s.filters, block) * patch;
    if (!packed) packed = workspace<T>(Scratch::packed_weights, size);
    std::fill(packed, packed + size, T(0));
    for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t p = 0; p < patch; ++p)
            packed[(f / block * patch + p) * block + f % block] = w[f * patch + p];
    return packed;
}

}  // namespace

OutputLayout contiguous_output(const DirectShape& s) {
    return {s.filters * s.out_h * s.out_w, s.out_h * s.out_w, s.out_w, 1};
}

template <typename T>
void direct_correlate(const DirectShape& s, int64_t batch, const T* source, const T* w,
                      const T* bias, T* y, const OutputLayout& out, bool relu) {
    const DirectKernels<T> kernels = direct_kernels<T>();
    const ForwardTile<T>& tile = best_forward_tile(kernels, s);
    const T* packed_w = pack_filters(s, w, tile.filters);
    const int64_t vector_width = int64_t(tile.vectors) * kernels.lanes;
    const int64_t image = s.channels * s.height * s.width;
    const int64_t row_work = s.filters * s.out_w * s.channels * s.kernel_h * s.kernel_w;
    if (batch >= num_threads()) {
        const int64_t image_work = row_work * s.out_h;
        parallel_for(batch, kConvMinTaskWork / std::max<int64_t>(image_work, 1) + 1,
                     [&](int64_t first, int64_t last) {
            Phased<T> phased(s, vector_width, 1, 1);
            for (int64_t n = first; n < last; ++n) {
                phased.fill(s, source + n * image);
                tile.run({&s, &phased, packed_w, bias, y + n * out.image, &out, relu}, 0, s.out_h);
            }
        });
        return;
    }
    // Fewer images than threads: split each image's output rows instead, in
    // whole tiles.
    Phased<T> phased(s, vector_width, 1, 1);
    const int64_t row_blocks = (s.out_h + tile.rows - 1) / tile.rows;
    for (int64_t n = 0; n < batch; ++n) {
        phased.fill(s, source + n * image);
        const ForwardArgs<T> args{&s, &phased, packed_w, bias, y + n * out.image, &out, relu};
        parallel_for(row_blocks, kConvMinTaskWork / std::max<int64_t>(row_work * tile.rows, 1) + 1,
                     [&](int64_t b0, int64_t b1) {
                         tile.run(args, b0 * tile.rows, std::min(s.out_h, b1 * tile.rows));
                     });
    }
}

template <typename T>
void direct_correlate_many(const std::vector<DirectJob<T>>& jobs, int64_t batch,
                           const T* source) {
    if (jobs.empty()) return;
    const DirectKernels<T> kernels = direct_kernels<T>();
    // One padded copy of each source image that every job reads: the largest
    // padding, and the rows and columns the furthest-reaching job reads.
    DirectShape whole = jobs[0].shape;
    for (const DirectJob<T>& job : jobs) {
        whole.top = std::max(whole.top, job.shape.top);
        whole.left = std::max(whole.left, job.shape.left);
    }
    struct Plan {
        const ForwardTile<T>* tile;
        const T* packed_w;
        int64_t top, left;  // where the job's rows and columns begin in the copy
    };
    std::vector<Plan> plans;
    int64_t packed_size = 0, rows = 1, columns = 1;
    for (const DirectJob<T>& job : jobs) {
        const DirectShape& s = job.shape;
        const ForwardTile<T>& tile = best_forward_tile(kernels, s);
        const int64_t top = whole.top - s.top, left = whole.left - s.left;
        rows = std::max(rows, top + s.out_h - 1 + s.kernel_h);
        columns = std::max(columns, left + round_up(s.out_w, int64_t(tile.vectors) * kernels.lanes) +
                                        s.kernel_w - 1);
        plans.push_back({&tile, nullptr, top, left});
        packed_size += round_up(s.filters, tile.filters) * s.channels * s.kernel_h * s.kernel_w;
    }
    whole.kernel_h = whole.kernel_w = 1;
    whole.stride_h = whole.stride_w = 1;
    whole.out_h = rows;
    whole.out_w = columns;
    T* packed = workspace<T>(Scratch::packed_weights, packed_size);
    for (size_t k = 0; k < jobs.size(); ++k) {
        const DirectShape& s = jobs[k].shape;
        plans[k].packed_w = pack_filters(s, jobs[k].w, plans[k].tile->filters, packed);
        packed += round_up(s.filters, plans[k].tile->filters) * s.channels * s.kernel_h * s.kernel_w;
    }
    const int64_t image = whole.channels * whole.height * whole.width;
    auto args_of = [&](size_t k, const std::vector<Phased<T>>& views, int64_t n) {
        const DirectJob<T>& job = jobs[k];
        return ForwardArgs<T>{&job.shape, &views[k], plans[k].packed_w, nullptr,
                              job.y + n * job.out.image, &job.out, false};
    };
    auto views_of = [&](const Phased<T>& copy) {
        std::vector<Phased<T>> views;
        for (size_t k = 0; k < jobs.size(); ++k)
            views.emplace_back(jobs[k].shape, copy, plans[k].top, plans[k].left);
        return views;
    };
    int64_t image_work = 0;
    for (const DirectJob<T>& job : jobs)
        image_work += job.shape.filters * job.shape.out_h * job.shape.out_w *
                      job.shape.channels * job.shape.kernel_h * job.shape.kernel_w;
    if (batch >= num_threads()) {
        parallel_for(batch, kConvMinTaskWork / std::max<int64_t>(image_work, 1) + 1,
                     [&](int64_t first, int64_t last) {
            Phased<T> copy(whole, 1, 1, 1);
            const std::vector<Phased<T>> views = views_of(copy);
            for (int64_t n = first; n < last; ++n) {
                copy.fill(whole, source + n * image);
                for (size_t k = 0; k < jobs.size(); ++k)
                    plans[k].tile->run(args_of(k, views, n), 0, jobs[k].shape.out_h);
            }
        });
        return;
    }
    // Fewer images than threads: split each job's output rows instead.
    Phased<T> copy(whole, 1, 1, 1);
    const std::vector<Phased<T>> views = views_of(copy);
    for (int64_t n = 0; n < batch; ++n) {
        copy.fill(whole, source + n * image);
        for (size_t k = 0; k < jobs.size(); ++k) {
            const DirectShape& s = jobs[k].shape;
            const ForwardTile<T>& tile = *plans[k].tile;
            const ForwardArgs<T> args = args_of(k, views, n);
            const int64_t row_work = s.filters * s.out_w * s.channels * s.kernel_h * s.kernel_w;
            parallel_for(ceil_div(s.out_h, tile.rows),
                         kConvMinTaskWork / std::max<int64_t>(row_work * tile.rows, 1) + 1,
                         [&](int64_t b0, int64_t b1) {
                             tile.run(args, b0 * tile.rows, std::min(s.out_h, b1 * tile.rows));
                         });
        }
    }
}

template <typename T>
void direct_weight_gradient(const DirectShape& s, int64_t batch, const T* source,
                            const T* grad_y, T* grad_w) {
    const DirectKernels<T> kernels = direct_kernels<T>();
    const GradientTile<T>& tile = best_gradient_tile(kernels, s);
    const int64_t weights = s.filters * s.channels * s.kernel_h * s.kernel_w;
    const int64_t image = s.channels * s.height * s.width, plane = s.out_h * s.out_w;
    const int64_t grad_width = round_up(s.out_w, kernels.lanes);
    const int64_t filters = round_up(s.filters, tile.filters);
    std::fill(grad_w, grad_w + weights, T(0));
    if (batch == 0 || plane == 0) return;

    // Images are taken in groups whose sums run in registers before the one
    // sum across lanes; the group size depends on the shapes only.
    const int64_t blocks = weight_blocks(batch, weights, sizeof(T));
    const int64_t grad_image = filters * s.out_h * grad_width;
    const Phased<T> probe(s, kernels.lanes, tile.taps, 0);
    const int64_t image_bytes = (probe.image_size + grad_image) * int64_t(sizeof(T));
    const int64_t group = std::clamp<int64_t>(kDirectGroupBytes / image_bytes, 1,
                                              (batch + blocks - 1) / blocks);

    // Runs images [first, last) in groups; `run` takes the loaded group.
    auto for_groups = [&](int64_t first, int64_t last, auto run) {
        Phased<T> phased(s, kernels.lanes, tile.taps, group);
        T* grad = workspace<T>(Scratch::gradient, group * grad_image);
        std::fill(grad, grad + group * grad_image, T(0));
        for (int64_t n0 = first; n0 < last; n0 += group) {
            const int64_t count = std::min(group, last - n0);
            for (int64_t g = 0; g < count; ++g) {
                phased.fill(s, source + (n0 + g) * image, g);
                for (int64_t f = 0; f < s.filters; ++f)
                    for (int64_t oh = 0; oh < s.out_h; ++oh)
                        std::copy_n(grad_y + ((n0 + g) * s.filters + f) * plane + oh * s.out_w,
                                    s.out_w,
                                    grad + g * grad_image + (f * s.out_h + oh) * grad_width);
            }
            run(ColumnGradientArgs<T>{&s, &phased, grad, grad_width,
                              count});
        }
    };
    if (blocks == 1) {
        // One block: its groups in order, each group's window rows (c, i)
        // split over threads; every weight is summed by one thread, in the
        // same order whatever the thread count.
        const int64_t row_work = group * s.filters * s.kernel_w * plane;
        for_groups(0, batch, [&](const ColumnGradientArgs<T>& args) {
            parallel_for(s.channels * s.kernel_h,
                         kConvMinTaskWork / std::max<int64_t>(row_work, 1) + 1,
                         [&](int64_t q0, int64_t q1) { tile.run(args, q0, q1, grad_w); });
        });
        return;
    }
    T* partials = workspace<T>(Scratch::partials, blocks * weights);
    std::fill(partials, partials + blocks * weights, T(0));
    const int64_t block_work = weights * plane * batch / blocks;
    parallel_for(blocks, kConvMinTaskWork / std::max<int64_t>(block_work, 1) + 1,
                 [&](int64_t first, int64_t last) {
        for (int64_t block = first; block < last; ++block)
            for_groups(block * batch / blocks, (block + 1) * batch / blocks,
                       [&](const ColumnGradientArgs<T>& args) {
                           tile.run(args, 0, s.channels * s.kernel_h,
                                    partials + block * weights);
                       });
    });
    for (int64_t block = 0; block < blocks; ++block)
        for (int64_t i = 0; i < weights; ++i) grad_w[i] += partials[block * weights + i];
}

template void direct_correlate<float>(const DirectShape&, int64_t, const float*, const float*,
                                      const float*, float*, const OutputLayout&, bool);
template void direct_correlate<double>(const DirectShape&, int64_t, const double*,
                                       const double*, const double*, double*,
                                       const OutputLayout&, bool);
template void direct_correlate_many<float>(const std::vector<DirectJob<float>>&, int64_t,
                                           const float*);
template void direct_correlate_many<double>(const std::vector<DirectJob<double>>&, int64_t,
                                            const double*);
template void direct_weight_gradient<float>(const DirectShape&, int64_t, const float*,
                                            const float*, float*);
template void direct_weight_gradient<double>(const DirectShape&, int64_t, const double*,
                                             const double*, double*);

}  // namespace fastcnn
#endif  // FASTCNN_VECTORS
