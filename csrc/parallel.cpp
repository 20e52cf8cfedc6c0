#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace fastcnn {
namespace {

int hardware_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

std::atomic<int> thread_count{hardware_threads()};

}  // namespace

int num_threads() { return thread_count.load(); }

void set_num_threads(int n) { thread_count.store(std::max(1, n)); }

void parallel_for(int64_t count, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& body) {
    if (count <= 0) return;
    const int64_t by_size = std::max<int64_t>(1, count / std::max<int64_t>(1, min_chunk));
    const int64_t tasks = std::min<int64_t>(num_threads(), by_size);
    if (tasks <= 1) {
        body(0, count);
        return;
    }
    // Threads are started per call rather than pooled: nothing outlives the
    // call, so fork() and changing the thread count mid-run stay safe.
    std::vector<std::exception_ptr> errors(tasks);
    auto run = [&](int64_t task) {
        try {
            body(task * count / tasks, (task + 1) * count / tasks);
        } catch (...) {
            errors[task] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    workers.reserve(tasks - 1);
    for (int64_t task = 1; task < tasks; ++task) workers.emplace_back(run, task);
    run(0);
    for (auto& worker : workers) worker.join();
    for (auto& error : errors)
        if (error) std::rethrow_exception(error);
}

}  // namespace fastcnn
