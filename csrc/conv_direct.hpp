// Direct correlation: the filters slide over a padded copy of one image at a
// time, vectorised across output columns. For the few-channel layers of small
// CNNs this beats im2col + gemm, which copies every input value kh·kw times.
#pragma once

#include <cstdint>
#include <vector>

namespace fastcnn {

// A correlation over a zero-padded source image. The input gradient is a
// correlation of grad_y with the flipped kernel (one per stride phase of the
// input, see conv.cpp), so one kernel serves the forward pass and both gradients.
struct DirectShape {
    int64_t channels, height, width;  // one source image (C, H, W)
    int64_t top, left;                // zero rows/columns before the source (may be < 0)
    int64_t filters, kernel_h, kernel_w, stride_h, stride_w;
    int64_t out_h, out_w;
};

// Where y[n, f, oh, ow] is stored: y + n·image + f·plane + oh·row + ow·column.
struct OutputLayout {
    int64_t image, plane, row, column;
};

// The layout of a contiguous (batch, F, Ho, Wo) output.
OutputLayout contiguous_output(const DirectShape& shape);

// y (batch, F, Ho, Wo), stored as `out` says, = correlate(source, w (F, C, kh, kw))
// + bias (or null), through relu_of if relu.
template <typename T>
void direct_correlate(const DirectShape& shape, int64_t batch, const T* source, const T* w,
                      const T* bias, T* y, const OutputLayout& out, bool relu);

// One correlation of a direct_correlate_many call: y = correlate(source, w).
template <typename T>
struct DirectJob {
    DirectShape shape;  // unit strides; the source size as every other job's
    const T* w;
    T* y;
    OutputLayout out;
};

// Runs every job (stride-1 correlations of the same source images, which may
// differ in padding, kernel and output size) on one padded copy of each image.
template <typename T>
void direct_correlate_many(const std::vector<DirectJob<T>>& jobs, int64_t batch,
                           const T* source);

// grad_w (F, C, kh, kw) = Σ over the batch of correlate(source, grad_y).
template <typename T>
void direct_weight_gradient(const DirectShape& shape, int64_t batch, const T* source,
                            const T* grad_y, T* grad_w);

}  // namespace fastcnn
