// ReLU's forward pass, and its backward pass taken from its output (oneDNN's
// "use_dst_for_bwd" form): no pre-activation or mask needs keeping.
#pragma once

#include <cstdint>

namespace fastcnn {

// y[i] = max(x[i], 0) for i < count (NaN stays NaN, as numpy.maximum keeps it).
template <typename T>
void relu(int64_t count, const T* x, T* y);

// grad_x[i] = y[i] > 0 ? grad_y[i] : 0 for i < count (0 where y is NaN).
template <typename T>
void relu_backward(int64_t count, const T* grad_y, const T* y, T* grad_x);

}  // namespace fastcnn
