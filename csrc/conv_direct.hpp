// Direct correlation: the filters slide over a padded copy of one image at a
// time, vectorised across output columns. For the few-channel layers of small
// CNNs this beats im2col + gemm, which copies every input value kh·kw times.
#pragma once

#include <cstdint>

namespace fastcnn {

// A correlation over a source image that may be zero-dilated: the input
// gradient is a correlation of the stride-dilated grad_y with the flipped
// kernel, so one kernel serves the forward pass and both gradients.
struct DirectShape {
    int64_t channels, height, width;  // one source image (C, H, W)
    int64_t dilation_h, dilation_w;   // 1, or the stride spreading grad_y out
    int64_t top, left;                // zero rows/columns before the source (may be < 0)
    int64_t filters, kernel_h, kernel_w, stride_h, stride_w;
    int64_t out_h, out_w;
};

// y (batch, F, Ho, Wo) = correlate(source, w (F, C, kh, kw)) + bias (or null),
// through relu_of if relu.
template <typename T>
void direct_correlate(const DirectShape& shape, int64_t batch, const T* source, const T* w,
                      const T* bias, T* y, bool relu);

// grad_w (F, C, kh, kw) = Σ over the batch of correlate(source, grad_y).
template <typename T>
void direct_weight_gradient(const DirectShape& shape, int64_t batch, const T* source,
                            const T* grad_y, T* grad_w);

}  // namespace fastcnn
