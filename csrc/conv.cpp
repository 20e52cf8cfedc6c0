#include "conv.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "common.hpp"
#include "conv_direct.hpp"
#include "conv_narrow.hpp"
#include "conv_weight.hpp"
#include "gemm.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace fastcnn {
namespace {

using tuning::kColumnBytes;
using tuning::kConvMinTaskWork;
using tuning::kDirectMaxPatch;
using tuning::kMaxWeightBlocks;
using tuning::kPartialBytes;

int64_t patch_size(const ConvShape& s) { return s.channels * s.kernel_h * s.kernel_w; }

bool use_direct(int64_t patch) { return patch < kDirectMaxPatch; }

DirectShape forward_shape(const ConvShape& s) {
    return {s.channels, s.height,   s.width,    s.pad_h,    s.pad_w,  s.filters,
            s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.out_h, s.out_w};
}

#if FASTCNN_VECTORS
// The input gradient of one stride phase, the input pixels (sh·u + a, sw·v + b):
// each receives only the taps i ≡ a + ph (mod sh), j ≡ b + pw (mod sw), from
// grad_y rows u + ⌊(a + ph) / sh⌋ − m for tap i = (a + ph) % sh + sh·m (so for
// columns). That is a stride-1 correlation of grad_y, with no zeros spread
// between its values, with the taps of the phase flipped in space.
struct InputPhase {
    int64_t first_tap, taps;  // taps first_tap + stride·m, m < taps (per axis)
    int64_t size;             // input rows (columns) of the phase
    int64_t before;           // zero rows (columns) before grad_y: taps − 1 − ⌊(a + p) / s⌋
};

InputPhase input_phase(int64_t phase, int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
    const int64_t first_tap = (phase + pad) % stride;
    const int64_t taps = first_tap < kernel ? ceil_div(kernel - first_tap, stride) : 0;
    return {first_tap, taps, ceil_div(size - phase, stride), taps - 1 - (phase + pad) / stride};
}

// grad_x by the direct kernel: one stride-1 correlation of grad_y per stride
// phase of the input, all reading one padded copy of each grad_y image.
template <typename T>
void direct_input_gradient(const ConvShape& s, const T* grad_y, const T* w, T* grad_x) {
    const int64_t plane = s.height * s.width;
    const OutputLayout out{s.channels * plane, plane, s.stride_h * s.width, s.stride_w};
    std::vector<DirectJob<T>> jobs;
    std::vector<std::pair<int64_t, int64_t>> first_taps;  // each job's (row, column) first tap
    int64_t flipped_size = 0;
    for (int64_t a = 0; a < std::min(s.stride_h, s.height); ++a)
        for (int64_t b = 0; b < std::min(s.stride_w, s.width); ++b) {
            const InputPhase rows = input_phase(a, s.height, s.kernel_h, s.stride_h, s.pad_h);
            const InputPhase cols = input_phase(b, s.width, s.kernel_w, s.stride_w, s.pad_w);
            T* phase_x = grad_x + a * s.width + b;
            if (rows.taps == 0 || cols.taps == 0) {  // a stride beyond the kernel: no tap reaches
                for (int64_t n = 0; n < s.batch; ++n)
                    for (int64_t c = 0; c < s.channels; ++c)
                        for (int64_t u = 0; u < rows.size; ++u)
                            for (int64_t v = 0; v < cols.size; ++v)
                                phase_x[n * out.image + c * out.plane + u * out.row + v * out.column] = 0;
                continue;
            }
            const DirectShape shape{s.filters,  s.out_h,   s.out_w,   rows.before, cols.before,
                                    s.channels, rows.taps, cols.taps, 1,           1,
                                    rows.size,  cols.size};
            jobs.push_back({shape, nullptr, phase_x, out});
            first_taps.emplace_back(rows.first_tap, cols.first_tap);
            flipped_size += s.channels * s.filters * rows.taps * cols.taps;
        }
    // Per phase flipped[c][f][m][k] = w[f][c][i][j], i = first row tap + sh·(taps − 1 − m),
    // j likewise.
    T* flipped = workspace<T>(Scratch::flipped_weights, flipped_size);
    for (size_t index = 0; index < jobs.size(); ++index) {
        DirectJob<T>& job = jobs[index];
        const auto [first_i, first_j] = first_taps[index];
        const int64_t taps_h = job.shape.kernel_h, taps_w = job.shape.kernel_w;
        for (int64_t f = 0; f < s.filters; ++f)
            for (int64_t c = 0; c < s.channels; ++c)
                for (int64_t m = 0; m < taps_h; ++m)
                    for (int64_t k = 0; k < taps_w; ++k) {
                        const int64_t i = first_i + s.stride_h * (taps_h - 1 - m);
                        const int64_t j = first_j + s.stride_w * (taps_w - 1 - k);
                        flipped[((c * s.filters + f) * taps_h + m) * taps_w + k] =
                            w[((f * s.channels + c) * s.kernel_h + i) * s.kernel_w + j];
                    }
        job.w = flipped;
        flipped += s.channels * s.filters * taps_h * taps_w;
    }
    direct_correlate_many<T>(jobs, s.batch, grad_y);
}
#endif

template <typename T>
int64_t band_rows(const ConvShape& s) {
    const int64_t row_bytes = patch_size(s) * s.out_w * int64_t(sizeof(T));
    return std::clamp<int64_t>(kColumnBytes / std::max<int64_t>(row_bytes, 1), 1,
                               std::max<int64_t>(s.out_h, 1));
}

// Output columns ow whose input column ow·stride − pad + offset lies in [0, size).
void valid_range(int64_t size, int64_t out, int64_t stride, int64_t pad, int64_t offset,
                 int64_t& first, int64_t& last) {
    const int64_t shift = pad - offset;  // ow·stride >= shift and ow·stride < size + shift
    first = shift > 0 ? (shift + stride - 1) / stride : 0;
    last = size + shift > 0 ? std::min(out, (size + shift - 1) / stride + 1) : 0;
    first = std::min(first, last);
}

// col[(c·kh + i)·kw + j][(r − r0)·Wo + ow] = x[c][r·sh − ph + i][ow·sw − pw + j]
// (zero outside the image), for output rows r in [r0, r1).
template <typename T>
void im2col(const ConvShape& s, const T* image, int64_t r0, int64_t r1, T* col) {
    const int64_t cols = (r1 - r0) * s.out_w;
    for (int64_t c = 0; c < s.channels; ++c)
        for (int64_t i = 0; i < s.kernel_h; ++i)
            for (int64_t j = 0; j < s.kernel_w; ++j) {
                T* dst = col + ((c * s.kernel_h + i) * s.kernel_w + j) * cols;
                int64_t first, last;
                valid_range(s.width, s.out_w, s.stride_w, s.pad_w, j, first, last);
                for (int64_t r = r0; r < r1; ++r, dst += s.out_w) {
                    const int64_t y = r * s.stride_h - s.pad_h + i;
                    if (y < 0 || y >= s.height) {
                        std::fill(dst, dst + s.out_w, T(0));
                        continue;
                    }
                    const T* src = image + (c * s.height + y) * s.width + j - s.pad_w;
                    std::fill(dst, dst + first, T(0));
                    for (int64_t ow = first; ow < last; ++ow) dst[ow] = src[ow * s.stride_w];
                    std::fill(dst + last, dst + s.out_w, T(0));
                }
            }
}

// The adjoint of im2col: adds every column entry back onto its input pixel.
template <typename T>
void col2im_add(const ConvShape& s, const T* col, int64_t r0, int64_t r1, T* image) {
    const int64_t cols = (r1 - r0) * s.out_w;
    for (int64_t c = 0; c < s.channels; ++c)
        for (int64_t i = 0; i < s.kernel_h; ++i)
            for (int64_t j = 0; j < s.kernel_w; ++j) {
                const T* src = col + ((c * s.kernel_h + i) * s.kernel_w + j) * cols;
                int64_t first, last;
                valid_range(s.width, s.out_w, s.stride_w, s.pad_w, j, first, last);
                for (int64_t r = r0; r < r1; ++r, src += s.out_w) {
                    const int64_t y = r * s.stride_h - s.pad_h + i;
                    if (y < 0 || y >= s.height) continue;
                    T* dst = image + (c * s.height + y) * s.width - s.pad_w + j;
                    for (int64_t ow = first; ow < last; ++ow) dst[ow * s.stride_w] += src[ow];
                }
            }
}

}  // namespace

int64_t weight_blocks(int64_t batch, int64_t weights, int64_t element_size) {
    return std::clamp<int64_t>(kPartialBytes / std::max<int64_t>(weights * element_size, 1), 1,
                               std::min(kMaxWeightBlocks, std::max<int64_t>(batch, 1)));
}

template <typename T>
void correlate2d(const ConvShape& s, const T* x, const T* w, const T* bias, T* y, bool relu) {
    const int64_t patch = patch_size(s), plane = s.out_h * s.out_w;
#if FASTCNN_VECTORS
    if (use_direct(patch) && narrow_correlate_wins<T>(s)) {
        narrow_correlate(s, x, w, bias, y, relu);
        return;
    }
    if (use_direct(patch)) {
        const DirectShape shape = forward_shape(s);
        direct_correlate(shape, s.batch, x, w, bias, y, contiguous_output(shape), relu);
        return;
    }
#endif
    const int64_t rows = band_rows<T>(s);
    const bool threads_inside = s.batch == 1;
    const int64_t image_work = s.filters * plane * patch;
    parallel_for(s.batch, kConvMinTaskWork / std::max<int64_t>(image_work, 1) + 1,
                 [&](int64_t first, int64_t last) {
        T* col = workspace<T>(Scratch::image, patch * rows * s.out_w);
        for (int64_t n = first; n < last; ++n) {
            const T* image = x + n * s.channels * s.height * s.width;
            T* out = y + n * s.filters * plane;
            for (int64_t r0 = 0; r0 < s.out_h; r0 += rows) {
                const int64_t r1 = std::min(s.out_h, r0 + rows), cols = (r1 - r0) * s.out_w;
                im2col(s, image, r0, r1, col);
                gemm<T>(s.filters, cols, patch, {w, patch, 1}, {col, cols, 1},
                        out + r0 * s.out_w, plane, false, threads_inside);
            }
            if (bias)
                for (int64_t f = 0; f < s.filters; ++f)
                    for (T *v = out + f * plane, *end = v + plane; v < end; ++v) *v += bias[f];
            if (relu)
                for (T *v = out, *end = out + s.filters * plane; v < end; ++v) *v = relu_of(*v);
        }
    });
}

// grad_b[f] = Σ over (n, oh, ow) of grad_y[n, f, oh, ow]. Pixel k of each
// plane adds into chain k % kBiasChains, so neighbouring additions do not wait
// for each other (and the compiler may run the chains as one vector); the
// chains are added up in a fixed order at the end.
template <typename T>
void bias_gradient(const ConvShape& s, const T* grad_y, T* grad_b) {
    constexpr int kBiasChains = 8;
    const int64_t plane = s.out_h * s.out_w;
    for (int64_t f = 0; f < s.filters; ++f) {
        T chains[kBiasChains] = {};
        for (int64_t n = 0; n < s.batch; ++n) {
            const T* g = grad_y + (n * s.filters + f) * plane;
            int64_t k = 0;
            for (; k + kBiasChains <= plane; k += kBiasChains)
                for (int c = 0; c < kBiasChains; ++c) chains[c] += g[k + c];
            for (; k < plane; ++k) chains[k % kBiasChains] += g[k];
        }
        T total = 0;
        for (T chain : chains) total += chain;
        grad_b[f] = total;
    }
}

template <typename T>
void correlate2d_backward_weight(const ConvShape& s, const T* x, const T* grad_y, T* grad_w,
                                 T* grad_b) {
    const int64_t patch = patch_size(s), plane = s.out_h * s.out_w;
    const int64_t weights = s.filters * patch;
#if FASTCNN_VECTORS
    if (weight_gradient_wins<T>(s, use_direct(patch))) {
        weight_gradient(s, x, grad_y, grad_w, grad_b);
        return;
    }
#endif
    if (grad_b) bias_gradient(s, grad_y, grad_b);
#if FASTCNN_VECTORS
    if (use_direct(patch)) {
        direct_weight_gradient(forward_shape(s), s.batch, x, grad_y, grad_w);
        return;
    }
#endif
    std::fill(grad_w, grad_w + weights, T(0));
    if (s.batch == 0 || plane == 0) return;
    const int64_t blocks = weight_blocks(s.batch, weights, sizeof(T));
    const int64_t rows = band_rows<T>(s);
    T* partials = workspace<T>(Scratch::partials, blocks * weights);
    const int64_t block_work = weights * plane * s.batch / blocks;
    parallel_for(blocks, kConvMinTaskWork / std::max<int64_t>(block_work, 1) + 1,
                 [&](int64_t first_block, int64_t last_block) {
        T* col = workspace<T>(Scratch::image, patch * rows * s.out_w);
        for (int64_t block = first_block; block < last_block; ++block) {
            T* sum = partials + block * weights;
            bool first = true;
            for (int64_t n = block * s.batch / blocks; n < (block + 1) * s.batch / blocks; ++n)
                for (int64_t r0 = 0; r0 < s.out_h; r0 += rows) {
                    const int64_t r1 = std::min(s.out_h, r0 + rows), cols = (r1 - r0) * s.out_w;
                    im2col(s, x + n * s.channels * s.height * s.width, r0, r1, col);
                    const T* g = grad_y + n * s.filters * plane + r0 * s.out_w;
                    gemm<T>(s.filters, patch, cols, {g, plane, 1}, {col, 1, cols}, sum,
                            patch, !first, blocks == 1);
                    first = false;
                }
        }
    });
    for (int64_t block = 0; block < blocks; ++block)
        for (int64_t i = 0; i < weights; ++i) grad_w[i] += partials[block * weights + i];
}

template <typename T>
void convolve2d_full(const ConvShape& s, const T* grad_y, const T* w, T* grad_x) {
    const int64_t patch = patch_size(s), plane = s.out_h * s.out_w;
#if FASTCNN_VECTORS
    // The direct kernel multiplies the zeros around grad_y's values (its
    // padding) by w too: with an inf or NaN in w that would turn 0 into NaN, so such
    // weights take the im2col path, which only adds products that exist.
    const bool finite_w = std::all_of(w, w + s.filters * patch, [](T v) { return v - v == 0; });
    if (finite_w && use_direct(s.filters * s.kernel_h * s.kernel_w)) {
        // With stride 1 and p < k, grad_x = correlate(grad_y padded by k − 1 − p,
        // w flipped in space with its C and F swapped); its narrow outputs take
        // lanes over C.
        const ConvShape full{s.batch,    s.filters,  s.out_h,   s.out_w,
                             s.channels, s.kernel_h, s.kernel_w, 1,
                             1,          s.kernel_h - 1 - s.pad_h, s.kernel_w - 1 - s.pad_w,
                             s.height,   s.width};
        if (s.stride_h == 1 && s.stride_w == 1 && full.pad_h >= 0 && full.pad_w >= 0 &&
            narrow_correlate_wins<T>(full)) {
            const int64_t taps = s.kernel_h * s.kernel_w;
            T* flipped = workspace<T>(Scratch::flipped_weights, s.filters * patch);
            for (int64_t f = 0; f < s.filters; ++f)
                for (int64_t c = 0; c < s.channels; ++c)
                    for (int64_t t = 0; t < taps; ++t)
                        flipped[(c * s.filters + f) * taps + taps - 1 - t] =
                            w[(f * s.channels + c) * taps + t];
            narrow_correlate<T>(full, grad_y, flipped, nullptr, grad_x, false);
            return;
        }
        direct_input_gradient(s, grad_y, w, grad_x);
        return;
    }
#endif
    const int64_t image_size = s.channels * s.height * s.width;
    const int64_t rows = band_rows<T>(s);
    const bool threads_inside = s.batch == 1;
    const int64_t image_work = s.filters * plane * patch;
    parallel_for(s.batch, kConvMinTaskWork / std::max<int64_t>(image_work, 1) + 1,
                 [&](int64_t first, int64_t last) {
        T* col = workspace<T>(Scratch::image, patch * rows * s.out_w);
        for (int64_t n = first; n < last; ++n) {
            T* image = grad_x + n * image_size;
            std::fill(image, image + image_size, T(0));
            for (int64_t r0 = 0; r0 < s.out_h; r0 += rows) {
                const int64_t r1 = std::min(s.out_h, r0 + rows), cols = (r1 - r0) * s.out_w;
                const T* g = grad_y + n * s.filters * plane + r0 * s.out_w;
                // col = wᵀ·grad_y: w read as its transpose through the strides.
                gemm<T>(patch, cols, s.filters, {w, 1, patch}, {g, plane, 1}, col, cols,
                        false, threads_inside);
                col2im_add(s, col, r0, r1, image);
            }
        }
    });
}

template void correlate2d<float>(const ConvShape&, const float*, const float*, const float*,
                                 float*, bool);
template void correlate2d<double>(const ConvShape&, const double*, const double*,
                                  const double*, double*, bool);
template void correlate2d_backward_weight<float>(const ConvShape&, const float*, const float*,
                                                 float*, float*);
template void correlate2d_backward_weight<double>(const ConvShape&, const double*,
                                                  const double*, double*, double*);
template void convolve2d_full<float>(const ConvShape&, const float*, const float*, float*);
template void convolve2d_full<double>(const ConvShape&, const double*, const double*, double*);

}  // namespace fastcnn
