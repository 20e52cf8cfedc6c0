#include "conv_weight.hpp"

#include <algorithm>
#include <utility>

#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace fastcnn {

#if FASTCNN_VECTORS
namespace {

int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

// One image's operands and the grid of register tiles over grad_w, which is
// kept as sums[row = c·kh + i][tap j][filter f] with each extent rounded up to
// whole tiles; the padding rows, taps and filters compute sums nobody reads.
struct Layout {
    int64_t window_rows;  // C·kh
    int64_t rows, taps, filters;  // C·kh, kw, F rounded up to whole tiles
    int64_t padded_h, padded_w;   // (Ho − 1)·sh + kh rows, (Wo − 1)·sw + taps columns
    int64_t image_size;           // C·padded_h·padded_w
    int64_t grad_size;            // Ho·Wo·filters
    int64_t bias_offset;          // the bias gradient follows the weight sums
    int64_t sums;                 // rows·taps·filters + filters
};

template <typename T>
struct GradientArgs {
    const ConvShape* shape;
    const Layout* layout;
    const T* image;    // one zero-padded image [C][padded_h][padded_w]
    const T* grad;     // its grad_y, transposed to [Ho·Wo][filters]
    int64_t oh0, oh1;  // the band of output rows to sum over
};

// sums[q : q1] += the band's products, in register tiles of RS window rows ×
// JT taps × FV vectors of L filters. Per pixel: FV loads of grad_y and RS·JT
// broadcast input values, RS·JT·FV multiply-adds.
template <typename T, int L, int RS, int JT, int FV>
FASTCNN_INLINE void accumulate(const GradientArgs<T>& a, int64_t q0, int64_t q1, T* sums) {
    using V = Vec<T, L>;
    const ConvShape& s = *a.shape;
    const Layout& g = *a.layout;
    const int64_t plane = g.padded_h * g.padded_w;
    const int64_t row_step = s.stride_h * g.padded_w;
    for (int64_t q = q0; q < q1; q += RS) {
        const T* rows[RS];
#pragma GCC unroll 32
        for (int r = 0; r < RS; ++r) {
            // Rows past the last (c, i) repeat row 0; their sums are never read.
            const int64_t row = q + r < g.window_rows ? q + r : 0;
            rows[r] = a.image + row / s.kernel_h * plane + row % s.kernel_h * g.padded_w;
        }
        for (int64_t j0 = 0; j0 < g.taps; j0 += JT)
            for (int64_t f0 = 0; f0 < g.filters; f0 += FV * L) {
                T* sum = sums + (q * g.taps + j0) * g.filters + f0;
                V acc[RS][JT][FV];
#pragma GCC unroll 32
                for (int r = 0; r < RS; ++r)
#pragma GCC unroll 8
                    for (int j = 0; j < JT; ++j)
#pragma GCC unroll 4
                        for (int v = 0; v < FV; ++v)
                            __builtin_memcpy(&acc[r][j][v],
                                             sum + (r * g.taps + j) * g.filters + v * L, sizeof(V));
                for (int64_t oh = a.oh0; oh < a.oh1; ++oh) {
                    const T* x[RS];
#pragma GCC unroll 32
                    for (int r = 0; r < RS; ++r) x[r] = rows[r] + oh * row_step + j0;
                    const T* grad = a.grad + oh * s.out_w * g.filters + f0;
                    for (int64_t ow = 0, col = 0; ow < s.out_w;
                         ++ow, col += s.stride_w, grad += g.filters) {
                        V dy[FV];
#pragma GCC unroll 4
                        for (int v = 0; v < FV; ++v) __builtin_memcpy(&dy[v], grad + v * L, sizeof(V));
#pragma GCC unroll 32
                        for (int r = 0; r < RS; ++r)
#pragma GCC unroll 8
                            for (int j = 0; j < JT; ++j) {
                                const T value = x[r][col + j];
#pragma GCC unroll 4
                                for (int v = 0; v < FV; ++v) acc[r][j][v] += dy[v] * value;
                            }
                    }
                }
#pragma GCC unroll 32
                for (int r = 0; r < RS; ++r)
#pragma GCC unroll 8
                    for (int j = 0; j < JT; ++j)
#pragma GCC unroll 4
                        for (int v = 0; v < FV; ++v)
                            __builtin_memcpy(sum + (r * g.taps + j) * g.filters + v * L,
                                             &acc[r][j][v], sizeof(V));
            }
    }
}

#if defined(__clang__)
// low = the lanes swap_index_bit's `low` picks from a and b, high likewise.
template <int L, int H, typename V, int... l>
FASTCNN_INLINE void swap_lanes(V& low, V& high, const V& a, const V& b,
                               std::integer_sequence<int, l...>) {
    low = __builtin_shufflevector(a, b, ((l & H) ? L + l - H : l)...);
    high = __builtin_shufflevector(a, b, ((l & H) ? L + l : l + H)...);
}
#endif

// Swaps bit H of the row index with bit H of the lane index, for all rows:
// applied for every H from L/2 down to 1, it transposes the L×L block.
template <typename T, int L, int H>
FASTCNN_INLINE void swap_index_bit(Vec<T, L> (&rows)[L]) {
    using Index = decltype(Vec<T, L>{} < Vec<T, L>{});
    Index low, high;
#pragma GCC unroll 16
    for (int l = 0; l < L; ++l) {
        low[l] = (l & H) ? L + l - H : l;
        high[l] = (l & H) ? L + l : l + H;
    }
#pragma GCC unroll 16
    for (int i = 0; i < L; ++i)
        if ((i & H) == 0) {
            const Vec<T, L> a = rows[i], b = rows[i + H];
#if defined(__clang__)  // constant indices: one instruction each, as GCC's shuffle gives
            swap_lanes<L, H>(rows[i], rows[i + H], a, b, std::make_integer_sequence<int, L>{});
#else
            FASTCNN_SHUFFLE2(rows[i], a, b, low);
            FASTCNN_SHUFFLE2(rows[i + H], a, b, high);
#endif
        }
    if constexpr (H > 1) swap_index_bit<T, L, H / 2>(rows);
}

// Image n into the kernel's layouts: the zero-padded image, and grad_y
// transposed in L×L blocks, with its sum over pixels added to `bias` (per
// filter four chains over pixel blocks, added up in a fixed order).
template <typename T, int L>
FASTCNN_INLINE void load_image(const ConvShape& s, const Layout& g, const T* x,
                               const T* grad_y, T* image, T* grad, T* bias) {
    using V = Vec<T, L>;
    std::fill(image, image + g.image_size, T(0));
    const int64_t columns = std::min(s.width, g.padded_w - s.pad_w);
    for (int64_t c = 0; c < s.channels && columns > 0; ++c)
        for (int64_t r = 0; r < g.padded_h; ++r) {
            const int64_t h = r - s.pad_h;
            if (h < 0 || h >= s.height) continue;
            std::copy_n(x + (c * s.height + h) * s.width, columns,
                        image + (c * g.padded_h + r) * g.padded_w + s.pad_w);
        }
    const int64_t pixels = s.out_h * s.out_w;
    for (int64_t f0 = 0; f0 < g.filters; f0 += L) {
        V chains[4] = {};
        for (int64_t p0 = 0; p0 < pixels; p0 += L) {
            const int64_t count = std::min<int64_t>(L, pixels - p0);
            V rows[L];
#pragma GCC unroll 16
            for (int f = 0; f < L; ++f) {
                rows[f] = V{};
                if (f0 + f < s.filters)
                    __builtin_memcpy(&rows[f], grad_y + (f0 + f) * pixels + p0, count * sizeof(T));
            }
            swap_index_bit<T, L, L / 2>(rows);
#pragma GCC unroll 16
            for (int p = 0; p < L; ++p) {
                chains[p % 4] += rows[p];
                if (p < count) __builtin_memcpy(grad + (p0 + p) * g.filters + f0, &rows[p], sizeof(V));
            }
        }
        T total[L];
        const V sum = (chains[0] + chains[1]) + (chains[2] + chains[3]);
        __builtin_memcpy(total, &sum, sizeof(V));
        for (int64_t f = f0; f < std::min<int64_t>(f0 + L, s.filters); ++f) bias[f] += total[f - f0];
    }
}

template <typename T>
struct Tile {
    int rows, taps, vectors;
    void (*run)(const GradientArgs<T>&, int64_t q0, int64_t q1, T* sums);
};

template <typename T>
using LoadImage = void (*)(const ConvShape&, const Layout&, const T* x, const T* grad_y,
                           T* image, T* grad, T* bias);

#define FASTCNN_WEIGHT_TILE(PATH, T, RS, JT, FV) \
    Tile<T> { RS, JT, FV, PATH##_accumulate<RS, JT, FV> }
// Tiles (RS, JT, FV) with RS·JT·FV accumulators + FV grad_y vectors within the
// register file, shaped for the common kernels (1×1, 3×3, 5×5, 7×7), few
// filters (FV = 1) and many (FV = 4).
#define FASTCNN_WEIGHT_TILES_32(PATH, T)                                                   \
    FASTCNN_WEIGHT_TILE(PATH, T, 2, 3, 4), FASTCNN_WEIGHT_TILE(PATH, T, 1, 5, 4),          \
        FASTCNN_WEIGHT_TILE(PATH, T, 6, 1, 4), FASTCNN_WEIGHT_TILE(PATH, T, 3, 3, 3),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 2, 4, 3), FASTCNN_WEIGHT_TILE(PATH, T, 1, 5, 3),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 4, 3, 2), FASTCNN_WEIGHT_TILE(PATH, T, 2, 5, 2),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 3, 4, 2), FASTCNN_WEIGHT_TILE(PATH, T, 12, 1, 2),     \
        FASTCNN_WEIGHT_TILE(PATH, T, 3, 3, 2), FASTCNN_WEIGHT_TILE(PATH, T, 8, 3, 1), FASTCNN_WEIGHT_TILE(PATH, T, 5, 5, 1),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 3, 3, 1), FASTCNN_WEIGHT_TILE(PATH, T, 6, 4, 1),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 4, 7, 1), FASTCNN_WEIGHT_TILE(PATH, T, 24, 1, 1)
#define FASTCNN_WEIGHT_TILES_16(PATH, T)                                                   \
    FASTCNN_WEIGHT_TILE(PATH, T, 3, 1, 4), FASTCNN_WEIGHT_TILE(PATH, T, 1, 3, 3),          \
        FASTCNN_WEIGHT_TILE(PATH, T, 1, 4, 3), FASTCNN_WEIGHT_TILE(PATH, T, 2, 3, 2),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 1, 5, 2), FASTCNN_WEIGHT_TILE(PATH, T, 6, 1, 2),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 4, 3, 1), FASTCNN_WEIGHT_TILE(PATH, T, 2, 5, 1),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 3, 4, 1), FASTCNN_WEIGHT_TILE(PATH, T, 2, 7, 1),      \
        FASTCNN_WEIGHT_TILE(PATH, T, 12, 1, 1)
#define FASTCNN_WEIGHT_KERNELS(PATH, TARGET, T, L, REGS)                                  \
    template <int RS, int JT, int FV>                                                     \
    TARGET void PATH##_accumulate(const GradientArgs<T>& a, int64_t q0, int64_t q1,       \
                                  T* sums) {                                              \
        accumulate<T, L, RS, JT, FV>(a, q0, q1, sums);                                    \
    }                                                                                     \
    TARGET void PATH##_load(const ConvShape& s, const Layout& g, const T* x,              \
                            const T* grad_y, T* image, T* grad, T* bias) {                \
        load_image<T, L>(s, g, x, grad_y, image, grad, bias);                             \
    }                                                                                     \
    const Tile<T> PATH##_tiles[] = {FASTCNN_WEIGHT_TILES_##REGS(PATH, T)};

#define FASTCNN_NO_TARGET
// 16 vector registers for SSE2/NEON and AVX2, 32 for AVX-512.
FASTCNN_WEIGHT_KERNELS(float_generic, FASTCNN_NO_TARGET, float, 4, 16)
FASTCNN_WEIGHT_KERNELS(double_generic, FASTCNN_NO_TARGET, double, 2, 16)
#if FASTCNN_X86_DISPATCH
FASTCNN_WEIGHT_KERNELS(float_avx2, FASTCNN_TARGET_AVX2, float, 8, 16)
FASTCNN_WEIGHT_KERNELS(double_avx2, FASTCNN_TARGET_AVX2, double, 4, 16)
FASTCNN_WEIGHT_KERNELS(float_avx512, FASTCNN_TARGET_AVX512, float, 16, 32)
FASTCNN_WEIGHT_KERNELS(double_avx512, FASTCNN_TARGET_AVX512, double, 8, 32)
#endif

template <typename T>
struct Tiles {
    int lanes;
    LoadImage<T> load;
    const Tile<T>* begin;
    const Tile<T>* end;
};

template <typename T, size_t N>
Tiles<T> tiles_of(int lanes, LoadImage<T> load, const Tile<T> (&tiles)[N]) {
    return {lanes, load, tiles, tiles + N};
}

template <typename T>
Tiles<T> active_tiles();

template <>
Tiles<float> active_tiles<float>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return tiles_of(16, float_avx512_load, float_avx512_tiles);
    if (active_simd() == Simd::avx2) return tiles_of(8, float_avx2_load, float_avx2_tiles);
#endif
    return tiles_of(4, float_generic_load, float_generic_tiles);
}

template <>
Tiles<double> active_tiles<double>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return tiles_of(8, double_avx512_load, double_avx512_tiles);
    if (active_simd() == Simd::avx2) return tiles_of(4, double_avx2_load, double_avx2_tiles);
#endif
    return tiles_of(2, double_generic_load, double_generic_tiles);
}

double used(int64_t extent, int64_t tile) {
    return double(extent) / double(round_up(extent, tile));
}

// The tile that spends the largest share of its time on multiply-adds that
// count: a pixel step costs its multiply-adds, half of one per vector load and
// a quarter per broadcast, and padding rows, taps and lanes count as waste.
template <typename T>
const Tile<T>& best_tile(const Tiles<T>& tiles, const ConvShape& s) {
    const Tile<T>* best = tiles.begin;
    double best_score = -1;
    for (const Tile<T>* t = tiles.begin; t != tiles.end; ++t) {
        const double use = used(s.channels * s.kernel_h, t->rows) * used(s.kernel_w, t->taps) *
                           used(s.filters, int64_t(t->vectors) * tiles.lanes);
        const double multiply_adds = t->rows * t->taps * t->vectors;
        const double score =
            multiply_adds * use / (multiply_adds + 0.5 * t->vectors + 0.25 * t->rows * t->taps);
        if (score > best_score + 1e-9) best = t, best_score = score;
    }
    return *best;
}

template <typename T>
Layout layout_of(const ConvShape& s, const Tile<T>& tile, int lanes) {
    Layout g;
    g.window_rows = s.channels * s.kernel_h;
    g.rows = round_up(g.window_rows, tile.rows);
    g.taps = round_up(s.kernel_w, tile.taps);
    g.filters = round_up(s.filters, int64_t(tile.vectors) * lanes);
    g.padded_h = (s.out_h - 1) * s.stride_h + s.kernel_h;
    g.padded_w = (s.out_w - 1) * s.stride_w + g.taps;
    g.image_size = s.channels * g.padded_h * g.padded_w;
    g.grad_size = s.out_h * s.out_w * g.filters;
    g.bias_offset = g.rows * g.taps * g.filters;
    g.sums = g.bias_offset + g.filters;
    return g;
}

}  // namespace

template <typename T>
bool weight_gradient_wins(const ConvShape& s, bool direct_possible) {
    if (s.stride_h > s.kernel_h || s.stride_w > s.kernel_w) return false;
    if (!direct_possible) return true;
    const int lanes = active_tiles<T>().lanes;
    return used(s.filters, lanes) >= tuning::kWeightLaneShare * used(s.out_w, lanes);
}

template <typename T>
void weight_gradient(const ConvShape& s, const T* x, const T* grad_y, T* grad_w, T* grad_b) {
    const Tiles<T> tiles = active_tiles<T>();
    const Tile<T>& tile = best_tile(tiles, s);
    const Layout g = layout_of(s, tile, tiles.lanes);
    const int64_t weights = s.filters * s.channels * s.kernel_h * s.kernel_w;
    const int64_t pixels = s.out_h * s.out_w;
    if (s.batch == 0 || pixels == 0) {
        std::fill(grad_w, grad_w + weights, T(0));
        if (grad_b) std::fill(grad_b, grad_b + s.filters, T(0));
        return;
    }
    const int64_t in_image = s.channels * s.height * s.width, out_image = s.filters * pixels;
    const int64_t image_work = weights * pixels;
    // Output rows per band: its grad_y rows and the input rows they read.
    const int64_t band_row_bytes =
        (s.out_w * g.filters + s.channels * s.stride_h * g.padded_w) * int64_t(sizeof(T));
    const int64_t band = std::clamp<int64_t>(tuning::kWeightBandBytes / band_row_bytes, 1,
                                             std::max<int64_t>(s.out_h, 1));
    const int64_t blocks = weight_blocks(s.batch, g.sums, sizeof(T));
    T* partials = workspace<T>(Scratch::partials, blocks * g.sums);

    // Adds image n to `sums`, its tile rows split over threads if `split`.
    auto add_image = [&](int64_t n, T* sums, bool split) {
        T* image = workspace<T>(Scratch::image, g.image_size);
        T* grad = workspace<T>(Scratch::gradient, g.grad_size);
        tiles.load(s, g, x + n * in_image, grad_y + n * out_image, image, grad,
                   sums + g.bias_offset);
        for (int64_t oh0 = 0; oh0 < s.out_h; oh0 += band) {
            const GradientArgs<T> args{&s, &g, image, grad, oh0, std::min(s.out_h, oh0 + band)};
            if (!split) {
                tile.run(args, 0, g.rows, sums);
                continue;
            }
            const int64_t tile_work = image_work / g.window_rows * tile.rows;
            parallel_for(g.rows / tile.rows,
                         tuning::kConvMinTaskWork / std::max<int64_t>(tile_work, 1) + 1,
                         [&](int64_t b0, int64_t b1) {
                             tile.run(args, b0 * tile.rows, b1 * tile.rows, sums);
                         });
        }
    };
    if (blocks > 1) {
        const int64_t block_work = image_work * s.batch / blocks;
        parallel_for(blocks, tuning::kConvMinTaskWork / std::max<int64_t>(block_work, 1) + 1,
                     [&](int64_t first, int64_t last) {
            for (int64_t block = first; block < last; ++block) {
                T* sums = partials + block * g.sums;
                std::fill(sums, sums + g.sums, T(0));
                for (int64_t n = block * s.batch / blocks; n < (block + 1) * s.batch / blocks; ++n)
                    add_image(n, sums, false);
            }
        });
    } else {
        std::fill(partials, partials + g.sums, T(0));
        for (int64_t n = 0; n < s.batch; ++n) add_image(n, partials, true);
    }
    // The partials in block order, back in the (F, C, kh, kw) layout.
    for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t row = 0; row < g.window_rows; ++row)
            for (int64_t j = 0; j < s.kernel_w; ++j) {
                const T* partial = partials + (row * g.taps + j) * g.filters + f;
                T total = partial[0];
                for (int64_t block = 1; block < blocks; ++block) total += partial[block * g.sums];
                grad_w[(f * g.window_rows + row) * s.kernel_w + j] = total;
            }
    if (grad_b)
        for (int64_t f = 0; f < s.filters; ++f) {
            const T* partial = partials + g.bias_offset + f;
            T total = partial[0];
            for (int64_t block = 1; block < blocks; ++block) total += partial[block * g.sums];
            grad_b[f] = total;
        }
}

template bool weight_gradient_wins<float>(const ConvShape&, bool);
template bool weight_gradient_wins<double>(const ConvShape&, bool);
template void weight_gradient<float>(const ConvShape&, const float*, const float*, float*,
                                     float*);
template void weight_gradient<double>(const ConvShape&, const double*, const double*, double*,
                                      double*);
#endif  // FASTCNN_VECTORS

}  // namespace fastcnn
