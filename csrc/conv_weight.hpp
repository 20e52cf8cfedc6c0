// The weight gradient as a GEMM whose reduction runs over pixels:
// grad_w[c, i, j][f] = Σ over (n, oh, ow) of
//     x_padded[n, c, oh·sh + i, ow·sw + j] · grad_y[n, f, oh, ow],
// i.e. M = C·kh·kw (one input value broadcast), N = F (vector lanes),
// K = N·Ho·Wo. A register tile of channels-and-rows × taps × F-vectors of
// grad_w accumulates over a band of pixels with no reduction across lanes
// (oneDNN's backward-weights kernel and Georganas et al., SC18, block the same
// way). Threads split the batch into blocks, each summed into its own
// partial; the partials are added in block order, so the result is the same
// for every thread count.
#pragma once

#include <cstdint>

#include "conv.hpp"

namespace fastcnn {

// Built where the compiler has vector extensions (FASTCNN_VECTORS).
// Whether weight_gradient is the kernel to run: it needs strides no larger
// than the kernel (otherwise the padded copy of an image would hold mostly
// rows and columns no window reads); against the direct kernel, whose lanes
// run over output columns, it must fill its lanes of filters at least
// tuning::kWeightLaneShare as well as that one fills its lanes of columns.
template <typename T>
bool weight_gradient_wins(const ConvShape& shape, bool direct_possible);

// grad_w (F, C, kh, kw) = Σ over the batch of correlate(x, grad_y); and, if
// grad_b is not null, grad_b (F,) = Σ over (n, oh, ow) of grad_y.
template <typename T>
void weight_gradient(const ConvShape& shape, const T* x, const T* grad_y, T* grad_w, T* grad_b);

}  // namespace fastcnn
