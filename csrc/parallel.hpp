// Splitting independent work over threads.
//
// parallel_for cuts [0, count) into contiguous chunks, one per task, and runs
// each chunk on its own thread. parallel_region runs one body on a team of
// threads that can wait for each other (pack, then compute). Kernels make
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

// The threads running one parallel_region, all at the same time.
class Team {
  public:
    explicit Team(int size) : size_(size) {}
    int size() const { return size_; }
    // Returns once every member has called it (as often as this one).
    void barrier();

  private:
    const int size_;
    std::atomic<int> arrived_{0};
    std::atomic<int64_t> phase_{0};
};

// Runs body(thread, team) on up to max_threads threads at once (thread 0 is
// the caller). The team may be smaller than asked: a single thread when
// another call holds the workers. The body must not throw past a barrier;
// other exceptions are rethrown here.
void parallel_region(int max_threads, const std::function<void(int, Team&)>& body);

}  // namespace fastcnn
