#include "loss.hpp"

#include <cmath>

namespace fastcnn {

// A training batch's logits are small (64 rows of 10 classes): one thread, and
// rows in order, so the loss sum is the same on any thread count.
template <typename T>
SoftmaxCrossEntropy softmax_cross_entropy(int64_t rows, int64_t classes, const T* logits,
                                          const int64_t* labels, T* grad) {
    SoftmaxCrossEntropy result{0.0, 0};
    for (int64_t r = 0; r < rows; ++r) {
        const T* z = logits + r * classes;
        T* g = grad + r * classes;
        int64_t best = 0;
        for (int64_t k = 1; k < classes; ++k)
            if (z[k] > z[best]) best = k;
        const double shift = double(z[best]);
        double sum = 0;
        for (int64_t k = 0; k < classes; ++k) sum += std::exp(double(z[k]) - shift);
        const int64_t label = labels[r];
        result.loss_sum += std::log(sum) - (double(z[label]) - shift);
        result.correct += best == label;
        for (int64_t k = 0; k < classes; ++k)
            g[k] = (T(std::exp(double(z[k]) - shift) / sum) - T(k == label)) / T(rows);
    }
    return result;
}

template SoftmaxCrossEntropy softmax_cross_entropy<float>(int64_t, int64_t, const float*,
                                                          const int64_t*, float*);
template SoftmaxCrossEntropy softmax_cross_entropy<double>(int64_t, int64_t, const double*,
                                                           const int64_t*, double*);

}  // namespace fastcnn
