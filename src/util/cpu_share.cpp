#include "util/cpu_share.h"

#include <omp.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace sinklab {

// Processes at a positive nice value ("nice" time in /proc/stat) yield to this one when it runs at
// the default priority, so their time is not counted as competition; when this process is niced
// itself, its own time is in that column and so is its competition's, and the column counts.
ThreadGovernor::ThreadGovernor(int max_threads)
    : max_threads_(std::max(1, max_threads)),
      threads_(max_threads_),
      count_niced_(getpriority(PRIO_PROCESS, 0) > 0),
      last_(read()) {}

// One reading of the machine's and this process's CPU time, in clock ticks (USER_HZ).
ThreadGovernor::Reading ThreadGovernor::read() const {
    Reading r;
    r.when = std::chrono::steady_clock::now();
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return r;

    // /proc/stat lines "cpuN user nice system idle iowait irq softirq steal guest guest_nice";
    // guest time is already counted in user.
    std::ifstream stat("/proc/stat");
    std::string line;
    bool any = false;
    while (std::getline(stat, line)) {
        if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] < '0' || line[3] > '9') continue;
        std::istringstream fields(line.substr(3));
        int cpu = -1;
        uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
        fields >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
        if (!fields || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
        r.machine_busy_ticks += user + (count_niced_ ? nice : 0) + system + irq + softirq + steal;
        any = true;
    }
    // /proc/self/stat: "pid (comm) state ..." with utime and stime the 14th and 15th fields; comm
    // may hold spaces, so count from the last ')'.
    std::ifstream self("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (!any || paren == std::string::npos) return r;
    std::istringstream fields(text.substr(paren + 1));
    std::string skip;
    for (int field = 3; field <= 13; field++) fields >> skip;  // state .. cmajflt
    uint64_t utime = 0, stime = 0;
    fields >> utime >> stime;
    if (!fields) return r;
    r.own_ticks = utime + stime;
    r.valid = true;
    return r;
}

int ThreadGovernor::threads_for(int max_threads, double others_cores) {
    const int taken = int(std::floor(std::max(0.0, others_cores) + 0.4));
    return std::clamp(max_threads - taken, 1, std::max(1, max_threads));
}

int ThreadGovernor::update() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_.when).count();
    if (seconds < kWindowSeconds) return threads_;
    const Reading current = read();
    if (current.valid && last_.valid) {
        const double ticks_per_second = double(sysconf(_SC_CLK_TCK));
        const double machine = double(current.machine_busy_ticks - last_.machine_busy_ticks);
        const double own = double(current.own_ticks - last_.own_ticks);
        others_cores_ = std::max(0.0, (machine - own) / (ticks_per_second * seconds));
        threads_ = threads_for(max_threads_, others_cores_);
        omp_set_num_threads(threads_);
    }
    last_ = current;
    return threads_;
}

namespace {
std::unique_ptr<ThreadGovernor>& governor_slot() {
    static std::unique_ptr<ThreadGovernor> governor;
    return governor;
}
}  // namespace

void enable_adaptive_threads() { governor_slot() = std::make_unique<ThreadGovernor>(omp_get_max_threads()); }

ThreadGovernor* process_thread_governor() { return governor_slot().get(); }

}  // namespace sinklab
