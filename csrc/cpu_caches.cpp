#include "cpu_caches.hpp"

#include <fstream>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace fastcnn {
namespace {

std::string read_line(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    return line;
}

// "48K", "1024K", "32M" → bytes; 0 if unreadable.
int64_t parse_size(const std::string& text) {
    try {
        size_t used = 0;
        const int64_t value = std::stoll(text, &used);
        const char unit = used < text.size() ? text[used] : ' ';
        return unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : unit == 'G' ? value << 30 : value;
    } catch (...) {
        return 0;
    }
}

CacheSizes read_caches() {
    CacheSizes sizes{0, 0, 0};
    const std::string root = "/sys/devices/system/cpu/cpu0/cache/index";
    for (int index = 0; index < 8; ++index) {
        const std::string dir = root + std::to_string(index) + "/";
        const std::string type = read_line(dir + "type");
        if (type.empty()) break;
        if (type == "Instruction") continue;
        const std::string level = read_line(dir + "level");
        const int64_t size = parse_size(read_line(dir + "size"));
        if (level == "1") sizes.l1d = size;
        if (level == "2") sizes.l2 = size;
        if (level == "3") sizes.l3 = size;
    }
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    // glibc's answer is right for L1 and L2 but may give a whole socket's L3.
    if (sizes.l1d <= 0) sizes.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (sizes.l2 <= 0) sizes.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (sizes.l1d <= 0) sizes.l1d = int64_t(32) << 10;
    if (sizes.l2 <= 0) sizes.l2 = int64_t(512) << 10;
    if (sizes.l3 <= 0) sizes.l3 = int64_t(8) << 20;
    return sizes;
}

}  // namespace

const CacheSizes& cpu_caches() {
    static const CacheSizes sizes = read_caches();
    return sizes;
}

}  // namespace fastcnn
