#include "parallel.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tuning.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTCNN_HAS_FORK 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTCNN_PAUSE() _mm_pause()
#else
#define FASTCNN_PAUSE() std::this_thread::yield()
#endif

namespace fastcnn {
namespace {

int hardware_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

std::atomic<int> thread_count{hardware_threads()};

// The team size shares a word with the call's generation (see Pool::state_).
constexpr int kMaxTeam = 0xffff;

// Spins (with `pause`, which leaves the core's other thread its share) until
// done() or kSpinMicroseconds have passed; returns done().
template <typename Done>
bool spin_until(Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicroseconds);
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (done()) return true;
            FASTCNN_PAUSE();
        }
        if (std::chrono::steady_clock::now() > end) return done();
    }
}

// Worker threads that spin, then sleep, between calls. One call at a time uses
// them; a call that finds them busy (another Python thread computing) runs
// alone, with the same chunks and so the same results.
class Pool {
  public:
    // Runs job(0) on this thread and job(1) … job(team − 1) on workers, each
    // on its own thread. The jobs must not wait for each other: a job whose
    // worker has not begun it by the time job(0) is done runs here instead,
    // so a preempted worker costs nothing. Returns false, running nothing, if
    // another call holds the workers.
    bool run(int team, const std::function<void(int)>& job) {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy) return false;
        const uint64_t generation = state_.load() >> 16, current = generation + 1;
        while (int(workers_.size()) < team - 1) {
            workers_.push_back(std::make_unique<Worker>());
            Worker* worker = workers_.back().get();
            worker->taken.store(generation);
            const int slot = int(workers_.size());
            worker->thread = std::thread([this, worker, slot, generation] { work(*worker, slot, generation); });
        }
        job_ = &job;
        pending_.store(team - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            state_.store(current << 16 | uint64_t(team));
            if (sleepers_ > 0) wake_.notify_all();
        }
        job(0);
        for (int slot = 1; slot < team; ++slot)
            if (workers_[slot - 1]->taken.exchange(current) != current) {
                job(slot);
                pending_.fetch_sub(1);
            }
        if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [&] { return pending_.load() == 0; });
        }
        return true;
    }

  private:
    struct Worker {
        std::thread thread;
        // The last call whose job this worker's slot was taken for, by the
        // worker or (stolen) by the caller: whoever swaps it first runs it.
        std::atomic<uint64_t> taken{0};
    };

    // The worker in `slot` runs job(slot) of every call whose team includes it.
    void work(Worker& worker, int slot, uint64_t seen) {
        for (;;) {
            auto fresh = [&] { return state_.load(std::memory_order_acquire) >> 16 != seen; };
            if (!spin_until(fresh)) {
                std::unique_lock<std::mutex> lock(mutex_);
                ++sleepers_;
                wake_.wait(lock, fresh);
                --sleepers_;
            }
            const uint64_t state = state_.load(std::memory_order_acquire);
            seen = state >> 16;
            if (slot >= int(state & 0xffff) || worker.taken.exchange(seen) == seen) continue;
            (*job_)(slot);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(mutex_);
                done_.notify_one();
            }
        }
    }

    std::mutex busy_, mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::unique_ptr<Worker>> workers_;
    const std::function<void(int)>* job_ = nullptr;
    // generation << 16 | team size: one word, so a worker never pairs one
    // call's generation with another's team.
    std::atomic<uint64_t> state_{0};
    std::atomic<int> pending_{0};
    int sleepers_ = 0;
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

void wait_until_reaches(const std::atomic<int64_t>& counter, int64_t value) {
    auto reached = [&] { return counter.load(std::memory_order_acquire) >= value; };
    while (!spin_until(reached)) std::this_thread::yield();
}

void parallel_claim(int max_threads, const std::function<void(int)>& body) {
    const int team = std::clamp(std::min(max_threads, num_threads()), 1, kMaxTeam);
    std::vector<std::exception_ptr> errors(team);
    const std::function<void(int)> job = [&](int index) {
        try {
            body(index);
        } catch (...) {
            errors[index] = std::current_exception();
        }
    };
    if (team == 1 || !pool->run(team, job)) {
        body(0);
        return;
    }
    for (auto& error : errors)
        if (error) std::rethrow_exception(error);
}

void parallel_for(int64_t count, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& body) {
    if (count <= 0) return;
    const int64_t by_size = std::max<int64_t>(1, count / std::max<int64_t>(1, min_chunk));
    const int64_t tasks = std::min<int64_t>({num_threads(), by_size, kMaxTeam});
    if (tasks <= 1) {
        body(0, count);
        return;
    }
    std::vector<std::exception_ptr> errors(tasks);
    const std::function<void(int)> task = [&](int index) {
        try {
            body(index * count / tasks, (index + 1) * count / tasks);
        } catch (...) {
            errors[index] = std::current_exception();
        }
    };
    if (!pool->run(int(tasks), task))
        for (int index = 0; index < tasks; ++index) task(index);
    for (auto& error : errors)
        if (error) std::rethrow_exception(error);
}

}  // namespace fastcnn
