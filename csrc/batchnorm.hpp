// Batch normalisation over the batch (and spatial) axes, per channel, as in
// Ioffe & Szegedy (2015) and torch.nn.BatchNorm1d/2d.
//
// x is contiguous (N, C, S): S = H·W for (N, C, H, W), 1 for (N, C). Every
// channel is one task's work, summed in a fixed order (n, then s) in double,
// so results do not depend on the thread count. Shapes were checked by the caller.
#pragma once

#include <cstdint>

namespace fastcnn {

struct BatchNormShape {
    int64_t batch, channels, spatial;  // N, C, S = H·W (1 for (N, C) input)
};

// Training: mean[c] = Σ x / M and the biased var[c] = Σ (x − mean)² / M over the
// M = N·S values of channel c; y = (x − mean) / √(var + eps) · gamma + beta.
template <typename T>
void batchnorm_forward(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta,
                       double eps, T* y, T* mean, T* var);

// Inference: y = (x − mean) / √(var + eps) · gamma + beta with the given statistics.
template <typename T>
void batchnorm_inference(const BatchNormShape& shape, const T* x, const T* gamma, const T* beta,
                         const T* mean, const T* var, double eps, T* y);

// With x̂ = (x − mean) / √(var + eps): grad_gamma = Σ grad_y·x̂, grad_beta = Σ grad_y,
// and grad_x = gamma / √(var + eps) · (grad_y − [Σ grad_y + x̂·Σ grad_y·x̂] / M) when
// training (mean and var are the batch's own, so they depend on x), or
// gamma / √(var + eps) · grad_y when not (fixed running statistics).
template <typename T>
void batchnorm_backward(const BatchNormShape& shape, const T* grad_y, const T* x, const T* gamma,
                        const T* mean, const T* var, double eps, bool training, T* grad_x,
                        T* grad_gamma, T* grad_beta);

}  // namespace fastcnn
