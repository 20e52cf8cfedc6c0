#include "simd.hpp"

#include <atomic>
#include <stdexcept>

namespace fastcnn {
namespace {

const char* simd_name(Simd simd) {
    switch (simd) {
        case Simd::avx512: return "avx512";
        case Simd::avx2: return "avx2";
        default: return "generic";
    }
}

bool cpu_supports(Simd simd) {
#if FASTCNN_X86_DISPATCH
    if (simd == Simd::avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (simd == Simd::avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return simd == Simd::generic;
}

Simd best_supported() {
    for (Simd simd : {Simd::avx512, Simd::avx2})
        if (cpu_supports(simd)) return simd;
    return Simd::generic;
}

std::atomic<Simd> active{best_supported()};

}  // namespace

Simd active_simd() { return active.load(); }

std::string simd_path() { return simd_name(active.load()); }

std::vector<std::string> supported_simd_paths() {
    std::vector<std::string> names;
    for (Simd simd : {Simd::avx512, Simd::avx2, Simd::generic})
        if (cpu_supports(simd)) names.push_back(simd_name(simd));
    return names;
}

void set_simd_path(const std::string& name) {
    for (Simd simd : {Simd::avx512, Simd::avx2, Simd::generic}) {
        if (name != simd_name(simd)) continue;
        if (!cpu_supports(simd))
            throw std::invalid_argument("SIMD path '" + name + "' is not supported by this CPU");
        active.store(simd);
        return;
    }
    throw std::invalid_argument("unknown SIMD path '" + name +
                                "' (expected avx512, avx2 or generic)");
}

}  // namespace fastcnn
