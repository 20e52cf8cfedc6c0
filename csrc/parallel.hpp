// Splitting independent work over threads.
//
// parallel_for cuts [0, count) into contiguous chunks, one per task, and runs
// each chunk on its own thread. Kernels make every output element the work of
// exactly one task (or reduce per-task partials in a fixed order), so results
// never depend on how many threads ran.
#pragma once

#include <cstdint>
#include <functional>

namespace fastcnn {

int num_threads();
void set_num_threads(int n);

// Runs body(begin, end) over chunks of [0, count). A chunk holds at least
// min_chunk items, so work too small to pay for a thread stays on this one.
void parallel_for(int64_t count, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace fastcnn
