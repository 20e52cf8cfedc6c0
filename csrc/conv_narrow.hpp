// The forward correlation for narrow outputs (Wo below a vector or two), with
// vector lanes over filters instead of output columns: at Wo = 10 the direct
// kernel fills 10 of 16 AVX-512 lanes, this one all of them when F is a
// multiple of 16. A register tile is PB output pixels of one row × FV
// vectors of filters; per (c, i, j) it loads FV weight vectors and
// broadcasts PB input values (oneDNN's "1st conv" and brgemm kernels put
// lanes over output channels the same way).
#pragma once

#include <cstdint>

#include "conv.hpp"

namespace fastcnn {

// Built where the compiler has vector extensions (FASTCNN_VECTORS).
// Whether narrow_correlate is the kernel to run: unit column stride, an output
// narrower than tuning::kNarrowMaxWidth, and filters filling a larger share of
// the lanes than the output columns would.
template <typename T>
bool narrow_correlate_wins(const ConvShape& shape);

// y (N, F, Ho, Wo) = correlate(x, w) + bias (or null), through relu_of if relu.
template <typename T>
void narrow_correlate(const ConvShape& shape, const T* x, const T* w, const T* bias, T* y,
                      bool relu);

}  // namespace fastcnn
