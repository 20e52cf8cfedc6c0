#include "pool.hpp"

#include <algorithm>

#include "parallel.hpp"

namespace fastcnn {
namespace {

// Planes handed to one task at least hold this many window elements.
constexpr int64_t kMinTaskWork = 32768;

int64_t min_planes(const PoolShape& s) {
    const int64_t per_plane = s.out_h * s.out_w * s.size_h * s.size_w + s.height * s.width;
    return std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(per_plane, 1));
}

}  // namespace

template <typename T>
void maxpool2d(const PoolShape& s, const T* x, T* y, int64_t* argmax) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        for (int64_t p = first; p < last; ++p) {
            const T* in = x + p * in_plane;
            for (int64_t oh = 0; oh < s.out_h; ++oh)
                for (int64_t ow = 0; ow < s.out_w; ++ow) {
                    const int64_t top = oh * s.stride_h, left = ow * s.stride_w;
                    int64_t best_index = top * s.width + left;
                    T best = in[best_index];
                    for (int64_t i = 0; i < s.size_h; ++i)
                        for (int64_t j = 0; j < s.size_w; ++j) {
                            const int64_t index = (top + i) * s.width + left + j;
                            const T value = in[index];
                            // "value != value" is a NaN; the first NaN wins.
                            if (value > best || (value != value && best == best)) {
                                best = value;
                                best_index = index;
                            }
                        }
                    y[p * out_plane + oh * s.out_w + ow] = best;
                    argmax[p * out_plane + oh * s.out_w + ow] = best_index;
                }
        }
    });
}

template <typename T>
void maxpool2d_backward(const PoolShape& s, const T* grad_y, const int64_t* argmax, T* grad_x) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        std::fill(grad_x + first * in_plane, grad_x + last * in_plane, T(0));
        for (int64_t p = first; p < last; ++p)
            for (int64_t o = 0; o < out_plane; ++o)
                grad_x[p * in_plane + argmax[p * out_plane + o]] += grad_y[p * out_plane + o];
    });
}

template <typename T>
void avgpool2d(const PoolShape& s, const T* x, T* y) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
    const T scale = T(1) / T(s.size_h * s.size_w);
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        for (int64_t p = first; p < last; ++p) {
            const T* in = x + p * in_plane;
            for (int64_t oh = 0; oh < s.out_h; ++oh)
                for (int64_t ow = 0; ow < s.out_w; ++ow) {
                    const T* window = in + oh * s.stride_h * s.width + ow * s.stride_w;
                    T sum = 0;
                    for (int64_t i = 0; i < s.size_h; ++i)
                        for (int64_t j = 0; j < s.size_w; ++j) sum += window[i * s.width + j];
                    y[p * out_plane + oh * s.out_w + ow] = sum * scale;
                }
        }
    });
}

template <typename T>
void avgpool2d_backward(const PoolShape& s, const T* grad_y, T* grad_x) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
    const T scale = T(1) / T(s.size_h * s.size_w);
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        std::fill(grad_x + first * in_plane, grad_x + last * in_plane, T(0));
        for (int64_t p = first; p < last; ++p)
            for (int64_t oh = 0; oh < s.out_h; ++oh)
                for (int64_t ow = 0; ow < s.out_w; ++ow) {
                    T* window = grad_x + p * in_plane + oh * s.stride_h * s.width + ow * s.stride_w;
                    const T share = grad_y[p * out_plane + oh * s.out_w + ow] * scale;
                    for (int64_t i = 0; i < s.size_h; ++i)
                        for (int64_t j = 0; j < s.size_w; ++j) window[i * s.width + j] += share;
                }
    });
}

#define FASTCNN_INSTANTIATE_POOL(T)                                                   \
    template void maxpool2d<T>(const PoolShape&, const T*, T*, int64_t*);             \
    template void maxpool2d_backward<T>(const PoolShape&, const T*, const int64_t*, T*); \
    template void avgpool2d<T>(const PoolShape&, const T*, T*);                       \
    template void avgpool2d_backward<T>(const PoolShape&, const T*, T*);
FASTCNN_INSTANTIATE_POOL(float)
FASTCNN_INSTANTIATE_POOL(double)

}  // namespace fastcnn
