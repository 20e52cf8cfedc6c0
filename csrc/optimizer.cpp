#include "optimizer.hpp"

#include "parallel.hpp"
#include "tuning.hpp"

namespace fastcnn {

template <typename T>
void gradient_descent_update(int64_t count, T* parameter, const T* gradient,
                             double learning_rate) {
    const T rate = T(learning_rate);
    parallel_for(count, tuning::kElementwiseMinTask, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
            const T step = rate * gradient[i];
            parameter[i] -= step;
        }
    });
}

template void gradient_descent_update<float>(int64_t, float*, const float*, double);
template void gradient_descent_update<double>(int64_t, double*, const double*, double);

}  // namespace fastcnn
