#!/usr/bin/env bash
# The CPU benchmark of `make bench`: runs build/bench_cpu on all cores and writes build/bench.json.
#   tools/bench.sh [extra bench_cpu flags, e.g. --only gemm --filter small/]
# OMP_NUM_THREADS may be set to measure another thread count (default: every core).
# Timings are wall-clock: run it on an otherwise idle machine (the load average at the start is
# recorded in the JSON as loadavg_at_start).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -x "$BUILD/bench_cpu" ]; then
  echo "bench.sh: $BUILD/bench_cpu is missing; run make first" >&2
  exit 1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
echo "bench.sh: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench_cpu" --json "$BUILD/bench.json" "$@"
