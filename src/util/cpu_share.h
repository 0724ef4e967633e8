// Sharing the CPU with other processes: how many OpenMP threads a long CPU job should run.
//
// Why. Each parallel region of a training step (a GEMM, an attention pass, an element-wise op)
// ends when its slowest thread ends. When another busy process shares the cores, the kernel gives
// one of our threads only part of its core, so every region waits for that thread while the
// others idle (or spin, burning the time the slow thread needs). On 2 cores with one busy
// single-threaded process, 2 threads ran a `small` training step at 0.35-0.39x of its quiet speed;
// 1 thread, which then has a core of its own, ran it at about 0.55x (README, "Sharing the machine").
//
// What. Between steps, ThreadGovernor measures how many cores the *other* processes kept busy
// since its last measurement: the busy time of the CPUs this process may run on (/proc/stat:
// user, system, irq, softirq and steal, summed over the CPUs of the affinity mask; "nice" too
// when this process is niced itself, since niced processes yield to one at the default priority)
// minus this process's own CPU time (/proc/self/stat: utime + stime), over the wall time between
// the two readings. It then runs
//     threads = max(1, max_threads - floor(others + 0.4))
// so a process that keeps 0.6 of a core or more busy takes one thread away, and the threads come
// back when it stops. Readings are taken at most every kWindowSeconds, so short steps are pooled.
//
// The training step's results do not depend on the thread count (every reduction runs in a fixed
// order: src/ops/common.h, src/ops/matmul.h), so changing it between steps changes no bit of a run;
// tests/test_model.cpp checks this for every attention variant.
#pragma once
#include <chrono>
#include <cstdint>

namespace sinklab {

class ThreadGovernor {
public:
    static constexpr double kWindowSeconds = 0.5;

    // max_threads: the most threads to run (all the cores OpenMP would use by default).
    explicit ThreadGovernor(int max_threads);

    // Called between steps: when the window has passed, measures the other processes' load and
    // sets omp_set_num_threads. Returns the thread count in use. Without /proc (not Linux) it
    // keeps max_threads.
    int update();

    // The rule: max(1, max_threads - floor(others_cores + 0.4)).
    static int threads_for(int max_threads, double others_cores);

    int threads() const { return threads_; }
    int max_threads() const { return max_threads_; }
    // Cores the other processes kept busy over the last window (0 before the first one).
    double others_cores() const { return others_cores_; }

private:
    struct Reading {
        uint64_t machine_busy_ticks = 0;  // summed over the CPUs of the affinity mask
        uint64_t own_ticks = 0;           // this process, all threads
        std::chrono::steady_clock::time_point when;
        bool valid = false;
    };
    Reading read() const;

    int max_threads_;
    int threads_;
    bool count_niced_;  // count the "nice" column as other processes' load (this process is niced)
    double others_cores_ = 0.0;
    Reading last_;
};

// The process-wide governor of a long CPU job (the trainer): enable_adaptive_threads() is called
// by the command line when neither --threads nor OMP_NUM_THREADS fixes the thread count, and the
// job calls process_thread_governor()->update() between steps; nullptr when adaptation is off.
void enable_adaptive_threads();
ThreadGovernor* process_thread_governor();

}  // namespace sinklab
