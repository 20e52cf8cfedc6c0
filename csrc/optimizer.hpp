// Plain gradient descent's update, in place: the write-ups' rule and the
// default optimizer's, without NumPy's temporary for learning_rate · gradient.
#pragma once

#include <cstdint>

namespace fastcnn {

// parameter[i] -= T(learning_rate) · gradient[i] for i < count, the product
// rounded to T before the subtraction, as NumPy's `p -= learning_rate * g`
// rounds it (this file is compiled without FMA contraction).
template <typename T>
void gradient_descent_update(int64_t count, T* parameter, const T* gradient, double learning_rate);

}  // namespace fastcnn
