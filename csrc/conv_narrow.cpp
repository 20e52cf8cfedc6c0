#include "conv_narrow.hpp"

#include <algorithm>

#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace fastcnn {

#if FASTCNN_VECTORS
namespace {

int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

struct NarrowLayout {
    int64_t filters;             // F rounded up to whole tiles of vectors
    int64_t padded_h, padded_w;  // rows and columns of the zero-padded image
    int64_t image_size;          // C·padded_h·padded_w
};

template <typename T>
struct NarrowArgs {
    const ConvShape* shape;
    const NarrowLayout* layout;
    const T* image;     // one zero-padded image [C][padded_h][padded_w]
    const T* packed_w;  // [C][kh][kw][filters], the padding filters zero
    const T* bias;
    T* y;               // the image's output (F, Ho, Wo)
    bool relu;
};

// Output rows [oh0, oh1) in tiles of PB pixels × FV vectors of L filters.
template <typename T, int L, int PB, int FV>
FASTCNN_INLINE void narrow_rows(const NarrowArgs<T>& a, int64_t oh0, int64_t oh1) {
    using V = Vec<T, L>;
    const ConvShape& s = *a.shape;
    const NarrowLayout& g = *a.layout;
    const int64_t plane = g.padded_h * g.padded_w, out_plane = s.out_h * s.out_w;
    for (int64_t f0 = 0; f0 < g.filters; f0 += FV * L)
        for (int64_t oh = oh0; oh < oh1; ++oh)
            for (int64_t ow0 = 0; ow0 < s.out_w; ow0 += PB) {
                V acc[PB][FV] = {};
                // Taps that read only zero padding for every pixel of the tile
                // are skipped: many in the input gradient's full correlation.
                const int64_t top = oh * s.stride_h - s.pad_h, left = ow0 - s.pad_w;
                const int64_t i0 = std::max<int64_t>(0, -top);
                const int64_t i1 = std::min<int64_t>(s.kernel_h, s.height - top);
                const int64_t j0 = std::max<int64_t>(0, -(left + PB - 1));
                const int64_t j1 = std::min<int64_t>(s.kernel_w, s.width - left);
                for (int64_t c = 0; c < s.channels; ++c)
                    for (int64_t i = i0; i < i1; ++i) {
                        const T* x = a.image + c * plane + (oh * s.stride_h + i) * g.padded_w + ow0;
                        const T* wv =
                            a.packed_w + ((c * s.kernel_h + i) * s.kernel_w + j0) * g.filters + f0;
                        for (int64_t j = j0; j < j1; ++j, wv += g.filters) {
                            V w[FV];
#pragma GCC unroll 4
                            for (int v = 0; v < FV; ++v) __builtin_memcpy(&w[v], wv + v * L, sizeof(V));
#pragma GCC unroll 32
                            for (int p = 0; p < PB; ++p) {
                                const T value = x[p + j];
#pragma GCC unroll 4
                                for (int v = 0; v < FV; ++v) acc[p][v] += w[v] * value;
                            }
                        }
                    }
                // Back to (F, Ho, Wo): pixel-major sums through memory.
                T sums[PB][FV * L];
                __builtin_memcpy(sums, acc, sizeof(sums));
                const int64_t pixels = std::min<int64_t>(PB, s.out_w - ow0);
                const int64_t filters = std::min<int64_t>(FV * L, s.filters - f0);
                for (int64_t f = 0; f < filters; ++f) {
                    const T bias = a.bias ? a.bias[f0 + f] : T(0);
                    T* out = a.y + (f0 + f) * out_plane + oh * s.out_w + ow0;
                    if (a.relu)
                        for (int64_t p = 0; p < pixels; ++p) out[p] = relu_of(sums[p][f] + bias);
                    else
                        for (int64_t p = 0; p < pixels; ++p) out[p] = sums[p][f] + bias;
                }
            }
}

template <typename T>
struct NarrowTile {
    int pixels, vectors;
    void (*run)(const NarrowArgs<T>&, int64_t oh0, int64_t oh1);
};

#define FASTCNN_NARROW_TILE(PATH, T, PB, FV) \
    NarrowTile<T> { PB, FV, PATH##_narrow<PB, FV> }
// Tiles (PB, FV) with PB·FV accumulators + FV weight vectors within the
// register file, shaped for outputs 5–15 columns wide.
#define FASTCNN_NARROW_TILES_32(PATH, T)                                                 \
    FASTCNN_NARROW_TILE(PATH, T, 14, 2), FASTCNN_NARROW_TILE(PATH, T, 12, 2),            \
        FASTCNN_NARROW_TILE(PATH, T, 10, 2), FASTCNN_NARROW_TILE(PATH, T, 7, 2),         \
        FASTCNN_NARROW_TILE(PATH, T, 6, 4), FASTCNN_NARROW_TILE(PATH, T, 5, 4),          \
        FASTCNN_NARROW_TILE(PATH, T, 7, 3), FASTCNN_NARROW_TILE(PATH, T, 15, 1),         \
        FASTCNN_NARROW_TILE(PATH, T, 14, 1), FASTCNN_NARROW_TILE(PATH, T, 12, 1),         \
        FASTCNN_NARROW_TILE(PATH, T, 10, 1)
#define FASTCNN_NARROW_TILES_16(PATH, T)                                                 \
    FASTCNN_NARROW_TILE(PATH, T, 6, 2), FASTCNN_NARROW_TILE(PATH, T, 5, 2),              \
        FASTCNN_NARROW_TILE(PATH, T, 7, 1), FASTCNN_NARROW_TILE(PATH, T, 12, 1),          \
        FASTCNN_NARROW_TILE(PATH, T, 10, 1), FASTCNN_NARROW_TILE(PATH, T, 3, 3),          \
        FASTCNN_NARROW_TILE(PATH, T, 2, 4)
#define FASTCNN_NARROW_KERNELS(PATH, TARGET, T, L, REGS)                                \
    template <int PB, int FV>                                                           \
    TARGET void PATH##_narrow(const NarrowArgs<T>& a, int64_t oh0, int64_t oh1) {       \
        narrow_rows<T, L, PB, FV>(a, oh0, oh1);                                         \
    }                                                                                   \
    const NarrowTile<T> PATH##_narrow_tiles[] = {FASTCNN_NARROW_TILES_##REGS(PATH, T)};

#define FASTCNN_NO_TARGET
// 16 vector registers for SSE2/NEON and AVX2, 32 for AVX-512.
FASTCNN_NARROW_KERNELS(float_generic, FASTCNN_NO_TARGET, float, 4, 16)
FASTCNN_NARROW_KERNELS(double_generic, FASTCNN_NO_TARGET, double, 2, 16)
#if FASTCNN_X86_DISPATCH
FASTCNN_NARROW_KERNELS(float_avx2, FASTCNN_TARGET_AVX2, float, 8, 16)
FASTCNN_NARROW_KERNELS(double_avx2, FASTCNN_TARGET_AVX2, double, 4, 16)
FASTCNN_NARROW_KERNELS(float_avx512, FASTCNN_TARGET_AVX512, float, 16, 32)
FASTCNN_NARROW_KERNELS(double_avx512, FASTCNN_TARGET_AVX512, double, 8, 32)
#endif

template <typename T>
struct NarrowTiles {
    int lanes;
    const NarrowTile<T>* begin;
    const NarrowTile<T>* end;
};

template <typename T, size_t N>
NarrowTiles<T> narrow_tiles_of(int lanes, const NarrowTile<T> (&tiles)[N]) {
    return {lanes, tiles, tiles + N};
}

template <typename T>
NarrowTiles<T> narrow_tiles();

template <>
NarrowTiles<float> narrow_tiles<float>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return narrow_tiles_of(16, float_avx512_narrow_tiles);
    if (active_simd() == Simd::avx2) return narrow_tiles_of(8, float_avx2_narrow_tiles);
#endif
    return narrow_tiles_of(4, float_generic_narrow_tiles);
}

template <>
NarrowTiles<double> narrow_tiles<double>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return narrow_tiles_of(8, double_avx512_narrow_tiles);
    if (active_simd() == Simd::avx2) return narrow_tiles_of(4, double_avx2_narrow_tiles);
#endif
    return narrow_tiles_of(2, double_generic_narrow_tiles);
}

double used(int64_t extent, int64_t tile) {
    return double(extent) / double(round_up(extent, tile));
}

// The tile spending the largest share of its time on multiply-adds that
// count: a step costs its multiply-adds, half of one per vector load and a
// quarter per broadcast; padding pixels and filters are waste.
template <typename T>
const NarrowTile<T>& best_narrow_tile(const NarrowTiles<T>& tiles, const ConvShape& s) {
    const NarrowTile<T>* best = tiles.begin;
    double best_score = -1;
    for (const NarrowTile<T>* t = tiles.begin; t != tiles.end; ++t) {
        const double use =
            used(s.out_w, t->pixels) * used(s.filters, int64_t(t->vectors) * tiles.lanes);
        const double multiply_adds = t->pixels * t->vectors;
        const double score =
            multiply_adds * use / (multiply_adds + 0.5 * t->vectors + 0.25 * t->pixels);
        if (score > best_score + 1e-9) best = t, best_score = score;
    }
    return *best;
}

template <typename T>
void pad_image(const ConvShape& s, const NarrowLayout& g, const T* x, T* image) {
    std::fill(image, image + g.image_size, T(0));
    const int64_t columns = std::min(s.width, g.padded_w - s.pad_w);
    for (int64_t c = 0; c < s.channels && columns > 0; ++c)
        for (int64_t r = 0; r < g.padded_h; ++r) {
            const int64_t h = r - s.pad_h;
            if (h < 0 || h >= s.height) continue;
            std::copy_n(x + (c * s.height + h) * s.width, columns,
                        image + (c * g.padded_h + r) * g.padded_w + s.pad_w);
        }
}

}  // namespace

template <typename T>
bool narrow_correlate_wins(const ConvShape& s) {
    const int lanes = narrow_tiles<T>().lanes;
    return s.stride_w == 1 && s.stride_h <= s.kernel_h && s.out_w < tuning::kNarrowMaxWidth &&
           used(s.filters, lanes) > used(s.out_w, lanes);
}

template <typename T>
void narrow_correlate(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                      bool relu) {
    const NarrowTiles<T> tiles = narrow_tiles<T>();
    const NarrowTile<T>& tile = best_narrow_tile(tiles, s);
    NarrowLayout g;
    g.filters = round_up(s.filters, int64_t(tile.vectors) * tiles.lanes);
    g.padded_h = (s.out_h - 1) * s.stride_h + s.kernel_h;
    g.padded_w = round_up(s.out_w, tile.pixels) + s.kernel_w - 1;
    g.image_size = s.channels * g.padded_h * g.padded_w;
    const int64_t taps = s.channels * s.kernel_h * s.kernel_w;
    T* packed_w = workspace<T>(Scratch::packed_weights, taps * g.filters);
    for (int64_t t = 0; t < taps; ++t) {
        for (int64_t f = 0; f < s.filters; ++f) packed_w[t * g.filters + f] = w[f * taps + t];
        std::fill(packed_w + t * g.filters + s.filters, packed_w + (t + 1) * g.filters, T(0));
    }
    const int64_t in_image = s.channels * s.height * s.width;
    const int64_t out_image = s.filters * s.out_h * s.out_w;
    const int64_t row_work = s.filters * s.out_w * taps;
    if (s.out_h == 0 || s.out_w == 0) return;
    if (s.batch >= num_threads()) {
        parallel_for(s.batch, tuning::kConvMinTaskWork / std::max<int64_t>(row_work * s.out_h, 1) + 1,
                     [&](int64_t first, int64_t last) {
            T* image = workspace<T>(Scratch::image, g.image_size);
            for (int64_t n = first; n < last; ++n) {
                pad_image(s, g, x + n * in_image, image);
                tile.run({&s, &g, image, packed_w, bias, y + n * out_image, relu}, 0, s.out_h);
            }
        });
        return;
    }
    // Fewer images than threads: split each image's output rows instead.
    T* image = workspace<T>(Scratch::image, g.image_size);
    for (int64_t n = 0; n < s.batch; ++n) {
        pad_image(s, g, x + n * in_image, image);
        const NarrowArgs<T> args{&s, &g, image, packed_w, bias, y + n * out_image, relu};
        parallel_for(s.out_h, tuning::kConvMinTaskWork / std::max<int64_t>(row_work, 1) + 1,
                     [&](int64_t r0, int64_t r1) { tile.run(args, r0, r1); });
    }
}

template bool narrow_correlate_wins<float>(const ConvShape&);
template bool narrow_correlate_wins<double>(const ConvShape&);
template void narrow_correlate<float>(const ConvShape&, const float*, const float*, const float*,
                                      float*, bool);
template void narrow_correlate<double>(const ConvShape&, const double*, const double*,
                                       const double*, double*, bool);
#endif  // FASTCNN_VECTORS

}  // namespace fastcnn
