#include "conv_direct.hpp"

#include <algorithm>
#include <vector>

#include "conv.hpp"
#include "parallel.hpp"
#include "simd.hpp"

#if FASTCNN_VECTORS
namespace fastcnn {
namespace {

// A task computes at least this many multiply-adds, so a thread pays for itself.
constexpr int64_t kMinTaskWork = int64_t(1) << 20;

int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

// One source image laid out for unit-stride vector loads: for each channel
// and padded row, the row's columns split into stride_w phases,
// phased[c][r][q][t] = padded source at row r, column t·stride_w + q.
// Tap j of output column ow then reads phase j % sw at t = ow + j / sw.
template <typename T>
struct Phased {
    int64_t rows, width;  // rows = (Ho − 1)·sh + kh; width per phase, with vector slack
    std::vector<int64_t> column_index;  // source column → q·width + t, or −1 if unused
    std::vector<int64_t> tap_offset;    // tap j → (j % sw)·width + j / sw
    std::vector<T> data;

    Phased(const DirectShape& s, int64_t vector_width, int64_t tap_multiple)
        : rows((s.out_h - 1) * s.stride_h + s.kernel_h),
          width(round_up(s.out_w, vector_width) + (s.kernel_w - 1) / s.stride_w),
          column_index(s.width, -1),
          tap_offset(round_up(s.kernel_w, tap_multiple), 0),
          data(s.channels * rows * s.stride_w * width) {
        for (int64_t col = 0; col < s.width; ++col) {
            const int64_t padded = col * s.dilation_w + s.left;
            const int64_t t = padded / s.stride_w;
            if (padded >= 0 && t < width) column_index[col] = (padded % s.stride_w) * width + t;
        }
        for (int64_t j = 0; j < s.kernel_w; ++j)
            tap_offset[j] = (j % s.stride_w) * width + j / s.stride_w;
    }

    void fill(const DirectShape& s, const T* image) {
        std::fill(data.begin(), data.end(), T(0));
        const int64_t row_size = s.stride_w * width;
        for (int64_t c = 0; c < s.channels; ++c)
            for (int64_t h = 0; h < s.height; ++h) {
                const int64_t r = h * s.dilation_h + s.top;
                if (r < 0 || r >= rows) continue;
                const T* src = image + (c * s.height + h) * s.width;
                T* dst = data.data() + (c * rows + r) * row_size;
                for (int64_t col = 0; col < s.width; ++col)
                    if (column_index[col] >= 0) dst[column_index[col]] = src[col];
            }
    }

    const T* row(const DirectShape& s, int64_t c, int64_t r) const {
        return data.data() + (c * rows + r) * s.stride_w * width;
    }
};

template <typename T>
struct DirectArgs {
    const DirectShape* shape;
    const Phased<T>* source;
    const T* packed_w;  // [F / FB][C][kh][kw][FB], filters zero-padded to a multiple of FB
    const T* bias;
    T* y;              // one image's output (F, Ho, Wo)
    const T* grad;     // one image's grad_y, rows zero-padded to grad_width, filters to FB
    int64_t grad_width;
};

// Output rows [oh0, oh1) of one image: register tiles of FB filters × NV·L columns.
template <typename T, int L, int FB, int NV>
FASTCNN_INLINE void forward_rows(const DirectArgs<T>& a, int64_t oh0, int64_t oh1) {
    using V = Vec<T, L>;
    const DirectShape& s = *a.shape;
    const int64_t patch = s.channels * s.kernel_h * s.kernel_w;
    const int64_t* taps = a.source->tap_offset.data();
    for (int64_t f0 = 0; f0 < s.filters; f0 += FB) {
        const int64_t count = std::min<int64_t>(FB, s.filters - f0);
        for (int64_t oh = oh0; oh < oh1; ++oh)
            for (int64_t ow0 = 0; ow0 < s.out_w; ow0 += NV * L) {
                V acc[FB][NV] = {};
                const T* wv = a.packed_w + f0 * patch;
                for (int64_t c = 0; c < s.channels; ++c)
                    for (int64_t i = 0; i < s.kernel_h; ++i) {
                        const T* row = a.source->row(s, c, oh * s.stride_h + i) + ow0;
                        for (int64_t j = 0; j < s.kernel_w; ++j, wv += FB) {
                            V x[NV];
#pragma GCC unroll 4
                            for (int v = 0; v < NV; ++v)
                                __builtin_memcpy(&x[v], row + taps[j] + v * L, sizeof(V));
#pragma GCC unroll 16
                            for (int f = 0; f < FB; ++f) {
                                const T weight = wv[f];
#pragma GCC unroll 4
                                for (int v = 0; v < NV; ++v) acc[f][v] += x[v] * weight;
                            }
                        }
                    }
                const int64_t width = std::min<int64_t>(NV * L, s.out_w - ow0);
                for (int64_t f = 0; f < count; ++f) {
                    T lanes[NV * L];
                    __builtin_memcpy(lanes, acc[f], sizeof(lanes));
                    const T bias = a.bias ? a.bias[f0 + f] : T(0);
                    T* out = a.y + ((f0 + f) * s.out_h + oh) * s.out_w + ow0;
                    for (int64_t k = 0; k < width; ++k) out[k] = lanes[k] + bias;
                }
            }
    }
}

// grad_w[:, c0:c1] += one image's share: register tiles of FB filters × JB taps,
// each accumulating over all output positions, lanes across output columns.
template <typename T, int L, int FB, int JB>
FASTCNN_INLINE void weight_gradient(const DirectArgs<T>& a, int64_t c0, int64_t c1, T* grad_w) {
    using V = Vec<T, L>;
    const DirectShape& s = *a.shape;
    const int64_t* taps = a.source->tap_offset.data();
    const int64_t vectors = a.grad_width / L, plane = s.out_h * a.grad_width;
    // Lanes past the last output column must add nothing, even where the
    // source holds an inf or NaN: they are masked out of the last vector.
    V lane = {};
    for (int l = 0; l < L; ++l) lane[l] = T(l);
    const auto keep = lane < T(s.out_w - (vectors - 1) * L);
    for (int64_t c = c0; c < c1; ++c)
        for (int64_t i = 0; i < s.kernel_h; ++i)
            for (int64_t f0 = 0; f0 < s.filters; f0 += FB)
                for (int64_t j0 = 0; j0 < s.kernel_w; j0 += JB) {
                    V acc[FB][JB] = {};
                    for (int64_t oh = 0; oh < s.out_h; ++oh) {
                        const T* source = a.source->row(s, c, oh * s.stride_h + i);
                        const T* grad = a.grad + f0 * plane + oh * a.grad_width;
                        for (int64_t v = 0; v < vectors; ++v) {
                            V g[FB], x[JB];
#pragma GCC unroll 8
                            for (int f = 0; f < FB; ++f)
                                __builtin_memcpy(&g[f], grad + f * plane + v * L, sizeof(V));
#pragma GCC unroll 8
                            for (int j = 0; j < JB; ++j)
                                __builtin_memcpy(&x[j], source + taps[j0 + j] + v * L, sizeof(V));
                            if (v == vectors - 1)
#pragma GCC unroll 8
                                for (int j = 0; j < JB; ++j) x[j] = keep ? x[j] : V{};
#pragma GCC unroll 8
                            for (int f = 0; f < FB; ++f)
#pragma GCC unroll 8
                                for (int j = 0; j < JB; ++j) acc[f][j] += g[f] * x[j];
                        }
                    }
                    const int64_t filters = std::min<int64_t>(FB, s.filters - f0);
                    const int64_t taps_here = std::min<int64_t>(JB, s.kernel_w - j0);
                    for (int64_t f = 0; f < filters; ++f)
                        for (int64_t j = 0; j < taps_here; ++j) {
                            T sum = 0;
                            for (int l = 0; l < L; ++l) sum += acc[f][j][l];
                            grad_w[(((f0 + f) * s.channels + c) * s.kernel_h + i) * s.kernel_w +
                                   j0 + j] += sum;
                        }
                }
}

template <typename T>
struct DirectKernels {
    int lanes, forward_filters, forward_width, grad_filters, grad_taps;
    void (*forward)(const DirectArgs<T>&, int64_t, int64_t);
    void (*gradient)(const DirectArgs<T>&, int64_t, int64_t, T*);
};

// Each SIMD path: forward tiles of 6 filters × 2 vectors (12 accumulators),
// gradient tiles of FB × JB accumulators that fit the register file.
#define FASTCNN_DIRECT_KERNELS(T, NAME, TARGET, L, GFB, GJB)                                 \
    TARGET void NAME##_forward(const DirectArgs<T>& a, int64_t r0, int64_t r1) {             \
        forward_rows<T, L, 6, 2>(a, r0, r1);                                                  \
    }                                                                                         \
    TARGET void NAME##_gradient(const DirectArgs<T>& a, int64_t c0, int64_t c1, T* grad_w) { \
        weight_gradient<T, L, GFB, GJB>(a, c0, c1, grad_w);                                   \
    }                                                                                         \
    constexpr DirectKernels<T> NAME = {L, 6, 2 * L, GFB, GJB, NAME##_forward, NAME##_gradient};

#define FASTCNN_NO_TARGET
FASTCNN_DIRECT_KERNELS(float, float_generic, FASTCNN_NO_TARGET, 4, 3, 3)
FASTCNN_DIRECT_KERNELS(double, double_generic, FASTCNN_NO_TARGET, 2, 3, 3)
#if FASTCNN_X86_DISPATCH
FASTCNN_DIRECT_KERNELS(float, float_avx2, FASTCNN_TARGET_AVX2, 8, 3, 3)
FASTCNN_DIRECT_KERNELS(double, double_avx2, FASTCNN_TARGET_AVX2, 4, 3, 3)
FASTCNN_DIRECT_KERNELS(float, float_avx512, FASTCNN_TARGET_AVX512, 16, 4, 4)
FASTCNN_DIRECT_KERNELS(double, double_avx512, FASTCNN_TARGET_AVX512, 8, 4, 4)
#endif

template <typename T>
DirectKernels<T> direct_kernels();

template <>
DirectKernels<float> direct_kernels<float>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return float_avx512;
    if (active_simd() == Simd::avx2) return float_avx2;
#endif
    return float_generic;
}

template <>
DirectKernels<double> direct_kernels<double>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return double_avx512;
    if (active_simd() == Simd::avx2) return double_avx2;
#endif
    return double_generic;
}

// w (F, C, kh, kw) → [F / FB][C][kh][kw][FB], the missing filters zero.
template <typename T>
std::vector<T> pack_filters(const DirectShape& s, const T* w, int64_t block) {
    const int64_t patch = s.channels * s.kernel_h * s.kernel_w;
    std::vector<T> packed(round_up(s.filters, block) * patch, T(0));
    for (int64_t f = 0; f < s.filters; ++f)
        for (int64_t p = 0; p < patch; ++p)
            packed[(f / block * patch + p) * block + f % block] = w[f * patch + p];
    return packed;
}

}  // namespace

template <typename T>
void direct_correlate(const DirectShape& s, int64_t batch, const T* source, const T* w,
                      const T* bias, T* y) {
    const DirectKernels<T> kernels = direct_kernels<T>();
    const std::vector<T> packed_w = pack_filters(s, w, kernels.forward_filters);
    const int64_t image = s.channels * s.height * s.width, out = s.filters * s.out_h * s.out_w;
    const int64_t row_work = s.filters * s.out_w * s.channels * s.kernel_h * s.kernel_w;
    if (batch >= num_threads()) {
        parallel_for(batch, 1, [&](int64_t first, int64_t last) {
            Phased<T> phased(s, kernels.forward_width, 1);
            for (int64_t n = first; n < last; ++n) {
                phased.fill(s, source + n * image);
                kernels.forward({&s, &phased, packed_w.data(), bias, y + n * out, nullptr, 0}, 0,
                                s.out_h);
            }
        });
        return;
    }
    // Fewer images than threads: split each image's output rows instead.
    Phased<T> phased(s, kernels.forward_width, 1);
    for (int64_t n = 0; n < batch; ++n) {
        phased.fill(s, source + n * image);
        const DirectArgs<T> args{&s, &phased, packed_w.data(), bias, y + n * out, nullptr, 0};
        parallel_for(s.out_h, kMinTaskWork / std::max<int64_t>(row_work, 1) + 1,
                     [&](int64_t r0, int64_t r1) { kernels.forward(args, r0, r1); });
    }
}

template <typename T>
void direct_weight_gradient(const DirectShape& s, int64_t batch, const T* source,
                            const T* grad_y, T* grad_w) {
    const DirectKernels<T> kernels = direct_kernels<T>();
    const int64_t weights = s.filters * s.channels * s.kernel_h * s.kernel_w;
    const int64_t image = s.channels * s.height * s.width, plane = s.out_h * s.out_w;
    const int64_t grad_width = round_up(s.out_w, kernels.lanes);
    const int64_t filters = round_up(s.filters, kernels.grad_filters);
    std::fill(grad_w, grad_w + weights, T(0));
    if (batch == 0 || plane == 0) return;

    // grad_y of one image, rows zero-padded to whole vectors, filters to whole tiles.
    auto fill_grad = [&](std::vector<T>& grad, int64_t n) {
        for (int64_t f = 0; f < s.filters; ++f)
            for (int64_t oh = 0; oh < s.out_h; ++oh)
                std::copy_n(grad_y + (n * s.filters + f) * plane + oh * s.out_w, s.out_w,
                            grad.data() + (f * s.out_h + oh) * grad_width);
    };
    const int64_t blocks = weight_blocks(batch, weights, sizeof(T));
    if (blocks == 1) {
        // One block: its images in order, each image's channels split over threads.
        Phased<T> phased(s, kernels.forward_width, kernels.grad_taps);
        std::vector<T> grad(filters * s.out_h * grad_width, T(0));
        for (int64_t n = 0; n < batch; ++n) {
            phased.fill(s, source + n * image);
            fill_grad(grad, n);
            const DirectArgs<T> args{&s, &phased, nullptr, nullptr, nullptr, grad.data(),
                                     grad_width};
            const int64_t channel_work = s.filters * s.kernel_h * s.kernel_w * plane;
            parallel_for(s.channels, kMinTaskWork / std::max<int64_t>(channel_work, 1) + 1,
                         [&](int64_t c0, int64_t c1) { kernels.gradient(args, c0, c1, grad_w); });
        }
        return;
    }
    std::vector<T> partials(blocks * weights, T(0));
    parallel_for(blocks, 1, [&](int64_t first, int64_t last) {
        Phased<T> phased(s, kernels.forward_width, kernels.grad_taps);
        std::vector<T> grad(filters * s.out_h * grad_width, T(0));
        for (int64_t block = first; block < last; ++block)
            for (int64_t n = block * batch / blocks; n < (block + 1) * batch / blocks; ++n) {
                phased.fill(s, source + n * image);
                fill_grad(grad, n);
                kernels.gradient({&s, &phased, nullptr, nullptr, nullptr, grad.data(), grad_width},
                                 0, s.channels, partials.data() + block * weights);
            }
    });
    for (int64_t block = 0; block < blocks; ++block)
        for (int64_t i = 0; i < weights; ++i) grad_w[i] += partials[block * weights + i];
}

template void direct_correlate<float>(const DirectShape&, int64_t, const float*, const float*,
                                      const float*, float*);
template void direct_correlate<double>(const DirectShape&, int64_t, const double*,
                                       const double*, const double*, double*);
template void direct_weight_gradient<float>(const DirectShape&, int64_t, const float*,
                                            const float*, float*);
template void direct_weight_gradient<double>(const DirectShape&, int64_t, const double*,
                                             const double*, double*);

}  // namespace fastcnn
#endif  // FASTCNN_VECTORS
