// Scratch memory that lives between kernel calls: one arena per thread and
// slot, grow-only, never value-initialised. A steady training loop then
// touches no fresh pages; a per-call std::vector paid a page fault (≈ 2.7 µs)
// per 4 KB on every call.
#pragma once

#include <cstddef>

namespace fastcnn {

// The roles a kernel call may hold at the same time on one thread; each has
// its own arena, so taking one never invalidates another.
enum class Scratch { image, gradient, partials, packed_weights, flipped_weights, count };

void* workspace_bytes(Scratch slot, size_t bytes);

// At least `count` uninitialised elements of T, 64-byte aligned; valid until
// this thread asks for the same slot again.
template <typename T>
T* workspace(Scratch slot, size_t count) {
    return static_cast<T*>(workspace_bytes(slot, count * sizeof(T)));
}

// Ask the C library's allocator (glibc only) to keep freed memory for reuse: blocks
// up to tuning::kMallocMmapThreshold come from the heap, and the heap's free top
// is returned to the system only past tuning::kMallocTrimThreshold. A training
// step frees its activations and allocates the same sizes again; by default
// glibc hands such multi-megabyte arrays back to the system, so each step
// touches fresh pages (a LeNet step at batch 64: 1,200 page faults, 3 ms of 9).
// Returns false where the allocator has no such settings.
bool retain_freed_memory();

}  // namespace fastcnn
