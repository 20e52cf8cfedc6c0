#include "activation.hpp"

#include "parallel.hpp"
#include "tuning.hpp"

namespace fastcnn {

template <typename T>
void relu_backward(int64_t count, const T* grad_y, const T* y, T* grad_x) {
    parallel_for(count, tuning::kElementwiseMinTask, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) grad_x[i] = y[i] > T(0) ? grad_y[i] : T(0);
    });
}

template void relu_backward<float>(int64_t, const float*, const float*, float*);
template void relu_backward<double>(int64_t, const double*, const double*, double*);

}  // namespace fastcnn
