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

}  // namespace fastcnn
