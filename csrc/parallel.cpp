#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTCNN_HAS_FORK 1
#endif

namespace fastcnn {
namespace {

int hardware_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

std::atomic<int> thread_count{hardware_threads()};

// Worker threads that sleep between calls, so a call pays a wake-up, not a
// thread start. One call at a time uses them; a call that finds them busy
// (another Python thread computing) runs its tasks itself, with the same
// chunks and so the same results.
class Pool {
  public:
    // Runs task(0) … task(tasks − 1) on the workers and the calling thread.
    // Returns false, running nothing, if another call holds the workers.
    bool run(int64_t tasks, const std::function<void(int64_t)>& task) {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy) return false;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // A worker still looking at the previous call must let go of it first.
            idle_.wait(lock, [&] { return active_ == 0; });
            while (int64_t(workers_.size()) < tasks - 1)
                workers_.emplace_back([this] { work(); });
            task_ = &task;
            tasks_ = tasks;
            next_ = 0;
            done_ = 0;
            ++generation_;
        }
        wake_.notify_all();
        claim(task, tasks);
        std::unique_lock<std::mutex> lock(mutex_);
        finished_.wait(lock, [&] { return done_ == tasks; });
        return true;
    }

  private:
    void claim(const std::function<void(int64_t)>& task, int64_t tasks) {
        for (int64_t index; (index = next_.fetch_add(1)) < tasks;) {
            task(index);
            std::lock_guard<std::mutex> lock(mutex_);
            if (++done_ == tasks) finished_.notify_all();
        }
    }

    void work() {
        uint64_t seen = 0;
        for (;;) {
            const std::function<void(int64_t)>* task;
            int64_t tasks;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                task = task_;
                tasks = tasks_;
                ++active_;
            }
            claim(*task, tasks);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--active_ == 0) idle_.notify_all();
        }
    }

    std::mutex busy_, mutex_;
    std::condition_variable wake_, finished_, idle_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t)>* task_ = nullptr;
    int64_t tasks_ = 0, done_ = 0;
    std::atomic<int64_t> next_{0};
    int active_ = 0;
    uint64_t generation_ = 0;
};

// Never destroyed: the workers sleep until the process ends.
Pool* pool = new Pool();

#if FASTCNN_HAS_FORK
// A forked child has none of the parent's workers: it starts a pool of its own.
const int fork_handler = pthread_atfork(nullptr, nullptr, [] { pool = new Pool(); });
#endif

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
    std::vector<std::exception_ptr> errors(tasks);
    const std::function<void(int64_t)> task = [&](int64_t index) {
        try {
            body(index * count / tasks, (index + 1) * count / tasks);
        } catch (...) {
            errors[index] = std::current_exception();
        }
    };
    if (!pool->run(tasks, task))
        for (int64_t index = 0; index < tasks; ++index) task(index);
    for (auto& error : errors)
        if (error) std::rethrow_exception(error);
}

}  // namespace fastcnn
