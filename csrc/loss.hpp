// Softmax cross-entropy of integer class labels, fused into one pass over the
// logits: the loss, its gradient w.r.t. the logits, and the rows classified right.
#pragma once

#include <cstdint>

namespace fastcnn {

struct SoftmaxCrossEntropy {
    double loss_sum;  // Σ over rows of -log softmax(logits[r])[labels[r]]
    int64_t correct;  // rows whose first largest logit is at the label
};

// logits (rows, classes), labels (rows,) in [0, classes) (checked by the caller)
// -> grad (rows, classes) = (softmax(logits[r]) - onehot(labels[r])) / rows.
// Each row is shifted by its maximum before exp (log-sum-exp), and summed in
// double whatever T is; a NaN logit makes its row's loss NaN.
template <typename T>
SoftmaxCrossEntropy softmax_cross_entropy(int64_t rows, int64_t classes, const T* logits,
                                          const int64_t* labels, T* grad);

}  // namespace fastcnn
