#include "pool.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>

#include "parallel.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace fastcnn {
namespace {

using tuning::kPoolMinTaskWork;

int64_t min_planes(const PoolShape& s) {
    const int64_t per_plane = s.out_h * s.out_w * s.size_h * s.size_w + s.height * s.width;
    return std::max<int64_t>(1, kPoolMinTaskWork / std::max<int64_t>(per_plane, 1));
}

// One window's maximum and its index: the reference order of comparisons.
template <typename T>
FASTCNN_INLINE void maxpool_window(const PoolShape& s, const T* in, int64_t oh, int64_t ow,
                                   T* y, int64_t* argmax) {
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
    y[oh * s.out_w + ow] = best;
    argmax[oh * s.out_w + ow] = best_index;
}

// One plane, one output at a time.
template <typename T>
void maxpool_plane_scalar(const PoolShape& s, const T* in, T* y, int64_t* argmax) {
    for (int64_t oh = 0; oh < s.out_h; ++oh)
        for (int64_t ow = 0; ow < s.out_w; ++ow) maxpool_window(s, in, oh, ow, y, argmax);
}

#if FASTCNN_VECTORS
// One plane, L neighbouring outputs at a time, with the same comparisons in
// the same order. The plane's columns are first split into stride phases,
// phased[r][q][t] = in[r][t·sw + q], so every window element is a unit-stride
// load. Lane indices are integers as wide as T; the caller checks H·W fits.
template <typename T, int L>
FASTCNN_INLINE void maxpool_plane_vector(const PoolShape& s, const T* in, T* phased,
                                         int64_t width, T* y, int64_t* argmax) {
    using V = Vec<T, L>;
    using Mask = decltype(V{} < V{});
    using Index = std::remove_reference_t<decltype(Mask{}[0])>;
    // Only the phases that windows read: min(sw, size) of them.
    const int64_t phases = std::min(s.stride_w, s.size_w);
    for (int64_t r = 0; r < s.height; ++r)
        for (int64_t q = 0; q < phases; ++q) {
            T* dst = phased + (r * phases + q) * width;
            for (int64_t t = 0; t < width; ++t) {
                const int64_t col = t * s.stride_w + q;
                dst[t] = col < s.width ? in[r * s.width + col] : T(0);
            }
        }
    Index columns[L];
    for (int l = 0; l < L; ++l) columns[l] = Index(l * s.stride_w);
    Mask column;
    __builtin_memcpy(&column, columns, sizeof(column));
    // A NaN's magnitude bits exceed infinity's. Integer compares: GCC turns
    // "value != value" on 512-bit vectors into per-lane code.
    const Index magnitude = std::numeric_limits<Index>::max();
    Index infinity_bits;
    const T infinity = std::numeric_limits<T>::infinity();
    __builtin_memcpy(&infinity_bits, &infinity, sizeof(T));
    const int64_t window = s.size_h * s.size_w;
    for (int64_t oh = 0; oh < s.out_h; ++oh)
        for (int64_t ow0 = 0; ow0 < s.out_w; ow0 += L) {
            V best = {};
            Mask best_index = {}, best_nan = {};
            // Window element k = i·kw + j, for output columns ow0 + lane.
            for (int64_t k = 0; k < window; ++k) {
                const int64_t row = oh * s.stride_h + k / s.size_w, j = k % s.size_w;
                V value;
                __builtin_memcpy(&value,
                                 phased + (row * phases + j % s.stride_w) * width + ow0 +
                                     j / s.stride_w,
                                 sizeof(V));
                const Mask index = column + Index(row * s.width + ow0 * s.stride_w + j);
                const Mask nan = (Mask(value) & magnitude) > infinity_bits;
                const Mask better =
                    k == 0 ? ~Mask{} : (value > best) | (nan & ~best_nan);
                // Bitwise selects (a vector cast keeps the bits).
                best = V((Mask(value) & better) | (Mask(best) & ~better));
                best_index = (index & better) | (best_index & ~better);
                best_nan = (nan & better) | (best_nan & ~better);
            }
            // Lanes leave through memory: indexing a vector by a loop variable
            // makes GCC split it into scalars everywhere.
            T values[L];
            Index indices[L];
            __builtin_memcpy(values, &best, sizeof(values));
            __builtin_memcpy(indices, &best_index, sizeof(indices));
            const int64_t count = std::min<int64_t>(L, s.out_w - ow0);
            for (int64_t l = 0; l < count; ++l) {
                y[oh * s.out_w + ow0 + l] = values[l];
                argmax[oh * s.out_w + ow0 + l] = indices[l];
            }
        }
}

// Lanes l = 0 … L − 1 holding the integers 2·l + first (a shuffle mask
// known at compile time).
#if defined(__clang__)
// out = lanes 0, 2, 4, ... (parity 0) or 1, 3, 5, ... (parity 1) of a then b.
template <typename V, int... l>
FASTCNN_INLINE void every_other_lane(V& out, const V& a, const V& b, int parity,
                                     std::integer_sequence<int, l...>) {
    if (parity)
        out = __builtin_shufflevector(a, b, (2 * l + 1)...);
    else
        out = __builtin_shufflevector(a, b, (2 * l)...);
}
#endif

template <typename Mask, typename Index, int... l>
constexpr Mask every_other(Index first, std::integer_sequence<int, l...>) {
    return Mask{Index(2 * l + first)...};
}

// 2×2 windows at stride 2 (the common case): L outputs at a time straight
// from the plane, each row pair's even and odd columns split apart in
// registers; the same comparisons in the same order as above. A partial
// vector (out_w < L, as for 28×28 and 16×16 planes) reads on into the next
// row or plane, whose lanes are computed and not stored; only where that
// would read past the input's end (`readable_end`) does it read a zero-filled
// copy (copying every row cost 0.3 ms of 0.55 on (64, 64, 16, 16)).
template <typename T, int L>
FASTCNN_INLINE void maxpool_2x2_plane(const PoolShape& s, const T* in, const T* readable_end,
                                      T* y, int64_t* argmax) {
    using V = Vec<T, L>;
    using Mask = decltype(V{} < V{});
    using Index = std::remove_reference_t<decltype(Mask{}[0])>;
    constexpr Mask even = every_other<Mask, Index>(0, std::make_integer_sequence<int, L>{});
    [[maybe_unused]] constexpr Mask odd =
        every_other<Mask, Index>(1, std::make_integer_sequence<int, L>{});
    const Index magnitude = std::numeric_limits<Index>::max();
    Index infinity_bits;
    const T infinity = std::numeric_limits<T>::infinity();
    __builtin_memcpy(&infinity_bits, &infinity, sizeof(T));
    T tail[2][2 * L];
    for (int64_t oh = 0; oh < s.out_h; ++oh)
        for (int64_t ow0 = 0; ow0 < s.out_w; ow0 += L) {
            const int64_t count = std::min<int64_t>(L, s.out_w - ow0);
            const T* rows[2] = {in + 2 * oh * s.width + 2 * ow0,
                                in + (2 * oh + 1) * s.width + 2 * ow0};
            if (count < L && rows[1] + 2 * L > readable_end)
                for (int i = 0; i < 2; ++i) {
                    std::fill(tail[i], tail[i] + 2 * L, T(0));
                    std::copy_n(rows[i], 2 * count, tail[i]);
                    rows[i] = tail[i];
                }
            V best = {};
            Mask best_index = {}, best_nan = {};
            // Not unrolled: unrolled, GCC turns the selects into per-lane code.
#pragma GCC unroll 1
            for (int k = 0; k < 4; ++k) {
                V low, high;
                __builtin_memcpy(&low, rows[k / 2], sizeof(V));
                __builtin_memcpy(&high, rows[k / 2] + L, sizeof(V));
                V value;
#if defined(__clang__)  // constant indices: one instruction, as GCC's shuffle gives
                every_other_lane(value, low, high, k % 2, std::make_integer_sequence<int, L>{});
#else
                FASTCNN_SHUFFLE2(value, low, high, k % 2 ? odd : even);
#endif
                const Mask index = even + Index((2 * oh + k / 2) * s.width + 2 * ow0 + k % 2);
                const Mask nan = (Mask(value) & magnitude) > infinity_bits;
                const Mask better = k == 0 ? ~Mask{} : (value > best) | (nan & ~best_nan);
                best = V((Mask(value) & better) | (Mask(best) & ~better));
                best_index = (index & better) | (best_index & ~better);
                best_nan = (nan & better) | (best_nan & ~better);
            }
            int64_t indices[L];
            if constexpr (sizeof(Index) == sizeof(int64_t)) {
                __builtin_memcpy(indices, &best_index, sizeof(indices));
            } else {
                // Widened half a vector at a time: GCC splits a 1024-bit
                // conversion into scalars.
                using Half = Vec<Index, L / 2>;
                using Wide = Vec<int64_t, L / 2>;
                Half half[2];
                __builtin_memcpy(half, &best_index, sizeof(half));
                const Wide wide[2] = {__builtin_convertvector(half[0], Wide),
                                      __builtin_convertvector(half[1], Wide)};
                __builtin_memcpy(indices, wide, sizeof(indices));
            }
            __builtin_memcpy(y + oh * s.out_w + ow0, &best, count * sizeof(T));
            std::copy_n(indices, count, argmax + oh * s.out_w + ow0);
        }
}

template <typename T>
struct MaxpoolKernels {
    void (*plane)(const PoolShape&, const T* in, T* phased, int64_t width, T* y, int64_t* argmax);
    void (*plane_2x2)(const PoolShape&, const T* in, const T* readable_end, T* y,
                      int64_t* argmax);
    int lanes;
};

#define FASTCNN_MAXPOOL(NAME, TARGET, T, L)                                             \
    TARGET void NAME(const PoolShape& s, const T* in, T* phased, int64_t width, T* y,  \
                     int64_t* argmax) {                                                \
        maxpool_plane_vector<T, L>(s, in, phased, width, y, argmax);                   \
    }                                                                                  \
    TARGET void NAME##_2x2(const PoolShape& s, const T* in, const T* readable_end, T* y, \
                           int64_t* argmax) {                                          \
        maxpool_2x2_plane<T, L>(s, in, readable_end, y, argmax);                       \
    }
#define FASTCNN_NO_TARGET
FASTCNN_MAXPOOL(maxpool_float_generic, FASTCNN_NO_TARGET, float, 4)
FASTCNN_MAXPOOL(maxpool_double_generic, FASTCNN_NO_TARGET, double, 2)
#if FASTCNN_X86_DISPATCH
FASTCNN_MAXPOOL(maxpool_float_avx2, FASTCNN_TARGET_AVX2, float, 8)
FASTCNN_MAXPOOL(maxpool_double_avx2, FASTCNN_TARGET_AVX2, double, 4)
FASTCNN_MAXPOOL(maxpool_float_avx512, FASTCNN_TARGET_AVX512, float, 16)
FASTCNN_MAXPOOL(maxpool_double_avx512, FASTCNN_TARGET_AVX512, double, 8)
#endif

template <typename T>
MaxpoolKernels<T> maxpool_kernel();

template <>
MaxpoolKernels<float> maxpool_kernel<float>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return {maxpool_float_avx512, maxpool_float_avx512_2x2, 16};
    if (active_simd() == Simd::avx2) return {maxpool_float_avx2, maxpool_float_avx2_2x2, 8};
#endif
    return {maxpool_float_generic, maxpool_float_generic_2x2, 4};
}

template <>
MaxpoolKernels<double> maxpool_kernel<double>() {
#if FASTCNN_X86_DISPATCH
    if (active_simd() == Simd::avx512) return {maxpool_double_avx512, maxpool_double_avx512_2x2, 8};
    if (active_simd() == Simd::avx2) return {maxpool_double_avx2, maxpool_double_avx2_2x2, 4};
#endif
    return {maxpool_double_generic, maxpool_double_generic_2x2, 2};
}
#endif

}  // namespace

template <typename T>
void maxpool2d(const PoolShape& s, const T* x, T* y, int64_t* argmax) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
#if FASTCNN_VECTORS
    // Lane indices are as wide as T: 32 bits for float.
    if (in_plane <= (int64_t(1) << (8 * sizeof(T) - 2))) {
        const MaxpoolKernels<T> kernels = maxpool_kernel<T>();
        if (s.size_h == 2 && s.size_w == 2 && s.stride_h == 2 && s.stride_w == 2) {
            parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
                for (int64_t p = first; p < last; ++p)
                    kernels.plane_2x2(s, x + p * in_plane, x + s.planes * in_plane,
                                      y + p * out_plane, argmax + p * out_plane);
            });
            return;
        }
        const int64_t lanes = kernels.lanes;
        const int64_t width = (s.out_w + lanes - 1) / lanes * lanes + (s.size_w - 1) / s.stride_w;
        parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
            T* phased = workspace<T>(Scratch::image, s.height * std::min(s.stride_w, s.size_w) * width);
            for (int64_t p = first; p < last; ++p)
                kernels.plane(s, x + p * in_plane, phased, width, y + p * out_plane,
                             argmax + p * out_plane);
        });
        return;
    }
#endif
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        for (int64_t p = first; p < last; ++p)
            maxpool_plane_scalar(s, x + p * in_plane, y + p * out_plane, argmax + p * out_plane);
    });
}

template <typename T>
void maxpool2d_backward(const PoolShape& s, const T* grad_y, const int64_t* argmax, T* grad_x) {
    const int64_t in_plane = s.height * s.width, out_plane = s.out_h * s.out_w;
    parallel_for(s.planes, min_planes(s), [&](int64_t first, int64_t last) {
        // Plane by plane, so the additions find the zeroed plane in L1.
        for (int64_t p = first; p < last; ++p) {
            T* plane = grad_x + p * in_plane;
            std::fill(plane, plane + in_plane, T(0));
            for (int64_t o = 0; o < out_plane; ++o)
                plane[argmax[p * out_plane + o]] += grad_y[p * out_plane + o];
        }
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
