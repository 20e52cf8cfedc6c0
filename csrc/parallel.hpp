// Splitting independent work over threads.
//
// parallel_for cuts [0, count) into contiguous chunks, one per task, and runs
// each chunk on its own thread. parallel_claim runs one body on several
// threads that claim shared work until none is left. Kernels make
// every output element the work of exactly one task (or reduce per-task
// partials in a fixed order), so results never depend on how many threads ran.
//
// The workers spin for a moment after each call before they sleep, so calls in
// quick succession (a training step's layers) pay no wake-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace fastcnn {

int num_threads();
void set_num_threads(int n);

// Runs body(begin, end) over chunks of [0, count). A chunk holds at least
// min_chunk items, so work too small to pay for a thread stays on this one.
void parallel_for(int64_t count, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& body);

// Runs body(thread) for threads 0 … up to max_threads − 1, where each body
// claims chunks of shared work (from an atomic counter) until none are left.
// A body that no worker has begun by the time the caller's is done runs on the
// caller (and finds nothing left), so a preempted worker delays nothing.
void parallel_claim(int max_threads, const std::function<void(int)>& body);

// Returns once counter ≥ value: spins a moment, then yields the core (the
// threads it waits for may be preempted). For work claimed with
// parallel_claim whose later steps need earlier ones finished.
void wait_until_reaches(const std::atomic<int64_t>& counter, int64_t value);

}  // namespace fastcnn
