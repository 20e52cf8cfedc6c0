#include "batchnorm.hpp"

#include <algorithm>
#include <cmath>

#include "parallel.hpp"

namespace fastcnn {
namespace {

// Channels handed to one task at least hold this many values.
constexpr int64_t kMinTaskWork = 32768;

int64_t min_channels(const BatchNormShape& s) {
    return kMinTaskWork / std::max<int64_t>(s.batch * s.spatial, 1) + 1;
}

// Sums in kLanes interleaved partial sums, added up at the end: independent
// additions the compiler can put in one vector register, in an order fixed by the
// run length alone.
constexpr int kLanes = 8;

// Σ term(i) for i in [0, count).
template <typename Term>
double lane_sum(int64_t count, Term term) {
    double lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= count; i += kLanes)
        for (int k = 0; k < kLanes; ++k) lanes[k] += term(i + k);
    double sum = 0;
    for (int k = 0; k < kLanes; ++k) sum += lanes[k];
    for (; i < count; ++i) sum += term(i);
    return sum;
}

// Offset of the run of S values of sample n in channel c.
int64_t run_offset(const BatchNormShape& s, int64_t n, int64_t c) {
    return (n * s.channels + c) * s.spatial;
}

// y = (x − mean)·scale + shift over channel c. The difference is taken in double:
// in float, x·scale + (shift − mean·scale) would lose digits when |mean| ≫ std.
template <typename T>
void normalise_channel(const BatchNormShape& s, const T* x, int64_t c, double mean,
                       double scale, double shift, T* y) {
    for (int64_t n = 0; n < s.batch; ++n) {
        const int64_t offset = run_offset(s, n, c);
        for (int64_t i = 0; i < s.spatial; ++i)
            y[offset + i] = T((double(x[offset + i]) - mean) * scale + shift);
    }
}

}  // namespace

template <typename T>
void batchnorm_forward(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                       double eps, T* y, T* mean, T* var) {
    const double count = double(s.batch * s.spatial);
    parallel_for(s.channels, min_channels(s), [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c) {
            // Two passes (mean, then squared deviations): no cancellation as in Σx² − M·mean².
            double sum = 0;
            for (int64_t n = 0; n < s.batch; ++n) {
                const T* run = x + run_offset(s, n, c);
                sum += lane_sum(s.spatial, [&](int64_t i) { return double(run[i]); });
            }
            const double channel_mean = sum / count;
            double squares = 0;
            for (int64_t n = 0; n < s.batch; ++n) {
                const T* run = x + run_offset(s, n, c);
                squares += lane_sum(s.spatial, [&](int64_t i) {
                    const double deviation = double(run[i]) - channel_mean;
                    return deviation * deviation;
                });
            }
            const double channel_var = squares / count;
            const double scale = double(gamma[c]) / std::sqrt(channel_var + eps);
            normalise_channel(s, x, c, channel_mean, scale, double(beta[c]), y);
            mean[c] = T(channel_mean);
            var[c] = T(channel_var);
        }
    });
}

template <typename T>
void batchnorm_inference(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                         const T* mean, const T* var, double eps, T* y) {
    parallel_for(s.channels, min_channels(s), [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c) {
            const double scale = double(gamma[c]) / std::sqrt(double(var[c]) + eps);
            normalise_channel(s, x, c, double(mean[c]), scale, double(beta[c]), y);
        }
    });
}

template <typename T>
void batchnorm_backward(const BatchNormShape& s, const T* grad_y, const T* x, const T* gamma,
                        const T* mean, const T* var, double eps, bool training, T* grad_x,
                        T* grad_gamma, T* grad_beta) {
    const double count = double(s.batch * s.spatial);
    parallel_for(s.channels, min_channels(s), [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c) {
            const double channel_mean = mean[c];
            const double inv_std = 1.0 / std::sqrt(double(var[c]) + eps);
            // Σ g·(x − mean), times inv_std once, is Σ g·x̂.
            double sum_g = 0, sum_g_centred = 0;
            for (int64_t n = 0; n < s.batch; ++n) {
                const T* g = grad_y + run_offset(s, n, c);
                const T* run = x + run_offset(s, n, c);
                sum_g += lane_sum(s.spatial, [&](int64_t i) { return double(g[i]); });
                sum_g_centred += lane_sum(s.spatial, [&](int64_t i) {
                    return double(g[i]) * (double(run[i]) - channel_mean);
                });
            }
            const double sum_g_xhat = sum_g_centred * inv_std;
            grad_gamma[c] = T(sum_g_xhat);
            grad_beta[c] = T(sum_g);
            const double scale = double(gamma[c]) * inv_std;
            // grad_x = scale·g + slope·(x − mean) + shift: the batch statistics' share
            // (slope, shift) is there only when training.
            const double slope = training ? -scale * sum_g_xhat * inv_std / count : 0.0;
            const double shift = training ? -scale * sum_g / count : 0.0;
            for (int64_t n = 0; n < s.batch; ++n) {
                const int64_t offset = run_offset(s, n, c);
                for (int64_t i = 0; i < s.spatial; ++i)
                    grad_x[offset + i] =
                        T(double(grad_y[offset + i]) * scale +
                          (double(x[offset + i]) - channel_mean) * slope + shift);
            }
        }
    });
}

#define FASTCNN_INSTANTIATE_BATCHNORM(T)                                                      \
    template void batchnorm_forward<T>(const BatchNormShape&, const T*, const T*, const T*,    \
                                       double, T*, T*, T*);                                   \
    template void batchnorm_inference<T>(const BatchNormShape&, const T*, const T*, const T*,  \
                                         const T*, const T*, double, T*);                     \
    template void batchnorm_backward<T>(const BatchNormShape&, const T*, const T*, const T*,   \
                                        const T*, const T*, double, bool, T*, T*, T*);
FASTCNN_INSTANTIATE_BATCHNORM(float)
FASTCNN_INSTANTIATE_BATCHNORM(double)

}  // namespace fastcnn
