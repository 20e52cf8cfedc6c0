#include "workspace.hpp"

#include <cstdlib>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "tuning.hpp"

namespace fastcnn {
namespace {

constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 vector

struct Arenas {
    void* data[size_t(Scratch::count)] = {};
    size_t size[size_t(Scratch::count)] = {};
    ~Arenas() {
        for (void* p : data) std::free(p);
    }
};

thread_local Arenas arenas;

}  // namespace

void* workspace_bytes(Scratch slot, size_t bytes) {
    const size_t i = size_t(slot);
    if (bytes > arenas.size[i] || !arenas.data[i]) {
        // Grow by at least half again, so a slowly growing shape does not
        // reallocate on every call.
        size_t size = arenas.size[i] + arenas.size[i] / 2;
        if (size < bytes) size = bytes;
        size = (size + kAlignment - 1) / kAlignment * kAlignment;
        if (size == 0) size = kAlignment;
        void* data = std::aligned_alloc(kAlignment, size);
        if (!data) throw std::bad_alloc();
        std::free(arenas.data[i]);
        arenas.data[i] = data;
        arenas.size[i] = size;
    }
    return arenas.data[i];
}

bool retain_freed_memory() {
#if defined(__GLIBC__)
    // Setting either turns off glibc's own moving threshold, so both are set.
    return mallopt(M_MMAP_THRESHOLD, tuning::kMallocMmapThreshold) == 1 &&
           mallopt(M_TRIM_THRESHOLD, tuning::kMallocTrimThreshold) == 1;
#else
    return false;
#endif
}

}  // namespace fastcnn
