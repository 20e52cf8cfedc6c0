// This CPU's data cache sizes, read once at run time.
#pragma once

#include <cstdint>

namespace fastcnn {

struct CacheSizes {
    int64_t l1d;  // bytes per core
    int64_t l2;   // bytes per core
    int64_t l3;   // bytes shared by all the cores that share it (one share per process here)
};

// From Linux sysfs (/sys/devices/system/cpu/cpu0/cache), else sysconf, else
// 32 KB / 512 KB / 8 MB (a modest x86-64 core).
const CacheSizes& cpu_caches();

}  // namespace fastcnn
