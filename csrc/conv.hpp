// Strided, zero-padded, multi-channel 2-D correlation and its two gradients.
//
// Which kernel runs (thresholds in tuning.hpp):
// - forward and input gradient: with C·kh·kw (F·kh·kw) below kDirectMaxPatch
//   the direct kernel of conv_direct.hpp (lanes over output columns; the input
//   gradient one stride phase of the input at a time), or for outputs narrower
//   than a vector conv_narrow.hpp (lanes over filters); else im2col + gemm,
//   one image (or a band of its output rows) at a time;
// - weight gradient: conv_weight.hpp (lanes over filters, pixels the
//   reduction) for strides up to the kernel, unless few filters fill the
//   lanes worse than the output columns do (then the direct kernel); im2col +
//   gemm for strides beyond the kernel.
// Scratch memory comes from workspace.hpp and stays bounded whatever the
// batch size. Arrays are contiguous NCHW; shapes were checked by the caller.
#pragma once

#include <cstdint>

namespace fastcnn {

struct ConvShape {
    int64_t batch, channels, height, width;  // input x: (N, C, H, W)
    int64_t filters, kernel_h, kernel_w;     // weights w: (F, C, kh, kw)
    int64_t stride_h, stride_w, pad_h, pad_w;
    int64_t out_h, out_w;                    // Ho = (H + 2·ph − kh) / sh + 1
};

// y = correlate(x, w) + bias, bias may be null; with relu, y = max(y, 0)
// applied as the sums are stored (NaN stays NaN, as numpy.maximum keeps it).
template <typename T>
void correlate2d(const ConvShape& shape, const T* x, const T* w, const T* bias, T* y,
                 bool relu);

// The ReLU of an activation stored at its output: negative sums become 0.
template <typename T>
inline T relu_of(T value) {
    return value < T(0) ? T(0) : value;
}

// grad_w = Σ over the batch of correlate(x, grad_y): the gradient of y w.r.t. w;
// and, unless grad_b is null, grad_b (F,) = grad_y summed over (N, Ho, Wo): the
// gradient w.r.t. the bias.
template <typename T>
void correlate2d_backward_weight(const ConvShape& shape, const T* x, const T* grad_y,
                                 T* grad_w, T* grad_b);

// grad_x = the full convolution of grad_y with w: the gradient of y w.r.t. x.
template <typename T>
void convolve2d_full(const ConvShape& shape, const T* grad_y, const T* w, T* grad_x);

// The weight gradient is summed per block of images, each block into its own
// partial, then the partials in block order. The block count depends on the
// shapes only, never on the thread count, so the order of the sum is fixed.
int64_t weight_blocks(int64_t batch, int64_t weights, int64_t element_size);

}  // namespace fastcnn
