#include "activation.hpp"

#include "conv.hpp"
#include "parallel.hpp"
#include "tuning.hpp"

namespace fastcnn {

// Both loops load every operand unconditionally and select, so the compiler turns
// them into vector compares and blends: a branch on the sign of each activation
// mispredicts about half the time (2 ms on 800k values instead of 0.2 ms).

template <typename T>
void relu(int64_t count, const T* x, T* y) {
    parallel_for(count, tuning::kElementwiseMinTask, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) y[i] = relu_of(x[i]);
    });
}

template <typename T>
void relu_backward(int64_t count, const T* grad_y, const T* y, T* grad_x) {
    parallel_for(count, tuning::kElementwiseMinTask, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
            const T g = grad_y[i];
            grad_x[i] = y[i] > T(0) ? g : T(0);
        }
    });
}

template void relu<float>(int64_t, const float*, float*);
template void relu<double>(int64_t, const double*, double*);
template void relu_backward<float>(int64_t, const float*, const float*, float*);
template void relu_backward<double>(int64_t, const double*, const double*, double*);

}  // namespace fastcnn
