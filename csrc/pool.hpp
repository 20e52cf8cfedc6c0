// Max pooling (with the argmax its backward pass needs) and average pooling.
//
// No padding; windows may overlap (stride < size) and need not tile the input
// exactly. Arrays are contiguous NCHW; shapes were checked by the caller.
#pragma once

#include <cstdint>

namespace fastcnn {

struct PoolShape {
    int64_t planes;  // N·C: every (n, c) plane is pooled on its own
    int64_t height, width;
    int64_t size_h, size_w, stride_h, stride_w;
    int64_t out_h, out_w;  // Ho = (H − size) / stride + 1
};

// argmax holds the flat index (row·W + col) of each window's maximum in its
// (H, W) plane; ties go to the first in row-major order, a NaN always wins.
template <typename T>
void maxpool2d(const PoolShape& shape, const T* x, T* y, int64_t* argmax);

// grad_x[argmax] += grad_y, plane by plane. Indices were checked by the caller.
template <typename T>
void maxpool2d_backward(const PoolShape& shape, const T* grad_y, const int64_t* argmax,
                        T* grad_x);

template <typename T>
void avgpool2d(const PoolShape& shape, const T* x, T* y);

template <typename T>
void avgpool2d_backward(const PoolShape& shape, const T* grad_y, T* grad_x);

}  // namespace fastcnn
