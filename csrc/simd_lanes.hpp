// One SIMD instruction set as a type: its vectors and their partial (masked)
// loads and stores, for kernels written once as templates over it.
//
// A kernel template is FASTCNN_INLINE and is instantiated inside a function
// marked with the set's target attribute (FASTCNN_TARGET_AVX512 ...), so its
// vectors become that set's registers. Partial loads read only the lanes they
// are asked for (never past the end of a row) and zero the rest.
//
// Vectors cross these functions by reference and masks are plain integers:
// clang refuses a vector passed by value from a function compiled without the
// set (the kernel template, before it is inlined) to one compiled with it.
#pragma once

#include <cstdint>

#include "simd.hpp"

#if FASTCNN_X86_DISPATCH
#include <immintrin.h>
#endif

#if FASTCNN_VECTORS
namespace fastcnn {

// 16-byte vectors (SSE2 on x86-64, NEON on ARM); partial accesses lane by lane.
struct GenericIsa {
    static constexpr int kBytes = 16;
    template <typename T>
    struct Lanes {
        static constexpr int L = kBytes / int(sizeof(T));
        using V = Vec<T, L>;
        using Mask = int;
        static FASTCNN_INLINE Mask mask(int lanes) { return lanes; }
        static FASTCNN_INLINE void load(V& v, const T* p, Mask lanes) {
            v = V{};
            for (int i = 0; i < lanes; ++i) v[i] = p[i];
        }
        static FASTCNN_INLINE void store(T* p, const V& v, Mask lanes) {
            for (int i = 0; i < lanes; ++i) p[i] = v[i];
        }
    };
};

#if FASTCNN_X86_DISPATCH
#define FASTCNN_INLINE_AVX2 inline FASTCNN_TARGET_AVX2
#define FASTCNN_INLINE_AVX512 inline FASTCNN_TARGET_AVX512

struct Avx2Isa {
    static constexpr int kBytes = 32;
    template <typename T>
    struct Lanes;
};
template <>
struct Avx2Isa::Lanes<float> {
    static constexpr int L = 8;
    using V = Vec<float, 8>;
    using Mask = int;  // the lane count; the vector mask is made where it is used
    static FASTCNN_INLINE Mask mask(int lanes) { return lanes; }
    static FASTCNN_INLINE_AVX2 __m256i bits(int lanes) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static FASTCNN_INLINE_AVX2 void load(V& v, const float* p, Mask m) {
        v = _mm256_maskload_ps(p, bits(m));
    }
    static FASTCNN_INLINE_AVX2 void store(float* p, const V& v, Mask m) {
        _mm256_maskstore_ps(p, bits(m), v);
    }
};
template <>
struct Avx2Isa::Lanes<double> {
    static constexpr int L = 4;
    using V = Vec<double, 4>;
    using Mask = int;  // the lane count; the vector mask is made where it is used
    static FASTCNN_INLINE Mask mask(int lanes) { return lanes; }
    static FASTCNN_INLINE_AVX2 __m256i bits(int lanes) {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static FASTCNN_INLINE_AVX2 void load(V& v, const double* p, Mask m) {
        v = _mm256_maskload_pd(p, bits(m));
    }
    static FASTCNN_INLINE_AVX2 void store(double* p, const V& v, Mask m) {
        _mm256_maskstore_pd(p, bits(m), v);
    }
};

struct Avx512Isa {
    static constexpr int kBytes = 64;
    template <typename T>
    struct Lanes;
};
template <>
struct Avx512Isa::Lanes<float> {
    static constexpr int L = 16;
    using V = Vec<float, 16>;
    using Mask = __mmask16;
    static FASTCNN_INLINE Mask mask(int lanes) {
        return lanes >= 16 ? Mask(0xffff) : Mask((1u << lanes) - 1);
    }
    static FASTCNN_INLINE_AVX512 void load(V& v, const float* p, Mask m) {
        v = _mm512_maskz_loadu_ps(m, p);
    }
    static FASTCNN_INLINE_AVX512 void store(float* p, const V& v, Mask m) {
        _mm512_mask_storeu_ps(p, m, v);
    }
};
template <>
struct Avx512Isa::Lanes<double> {
    static constexpr int L = 8;
    using V = Vec<double, 8>;
    using Mask = __mmask8;
    static FASTCNN_INLINE Mask mask(int lanes) {
        return lanes >= 8 ? Mask(0xff) : Mask((1u << lanes) - 1);
    }
    static FASTCNN_INLINE_AVX512 void load(V& v, const double* p, Mask m) {
        v = _mm512_maskz_loadu_pd(m, p);
    }
    static FASTCNN_INLINE_AVX512 void store(double* p, const V& v, Mask m) {
        _mm512_mask_storeu_pd(p, m, v);
    }
};
#endif

// Whole-vector access, any alignment.
template <typename V, typename T>
FASTCNN_INLINE V load_vector(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}
template <typename V, typename T>
FASTCNN_INLINE void store_vector(T* p, V v) {
    __builtin_memcpy(p, &v, sizeof(v));
}

}  // namespace fastcnn
#endif
