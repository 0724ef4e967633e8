#!/usr/bin/env bash
# make gpu-check: builds for sm_90 (+ PTX) in build-gpu/, runs every GPU test (CTest label "gpu")
# and the GPU benchmark (tools/bench_gpu.cpp) with PyTorch's yardstick beside it
# (tools/bench_torch.py, skipped when PyTorch is missing), and prints a summary with the targets of
# the CUDA issue. Logs and JSON go to $OUT when that variable is set, else to build-gpu/gpu-check/.
# Budget: under 8 minutes on one H200. Expected: build 1-2 min, tests < 1, sanitizer < 1,
# benchmark ~1, PyTorch ~2.5 (torch.compile). Each stage has a timeout (tests 3 min, sanitizer
# 1.5 per tool, benchmark 2, PyTorch 3.3) and the late stages shrink when time runs short.
#   GPU_CHECK_QUICK=1   fewer benchmark repetitions
#   GPU_CHECK_NO_COMPILE=1  skip torch.compile in the yardstick
#   GPU_CHECK_SANITIZE=0    skip the compute-sanitizer stage
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${GPU_BUILD:-build-gpu}
LOG=${OUT:-$BUILD/gpu-check}
mkdir -p "$BUILD" "$LOG"
LOG=$(cd "$LOG" && pwd)
JOBS=$(nproc)
start=$(date +%s)
say() { echo "[gpu-check $(( $(date +%s) - start ))s] $*"; }

# ---- dependencies: use the system's; else unpack carried Debian packages (.deps/, see
# tools/fetch_gpu_deps.sh) into the build folder; else try tools/setup.sh (needs the network).
CMAKE_EXTRA=()
if compgen -G ".deps/*.deb" >/dev/null; then
  DEPROOT=$ROOT/$BUILD/deps
  if [ ! -d "$DEPROOT/usr" ]; then
    for f in .deps/*.deb; do dpkg -x "$f" "$DEPROOT"; done
  fi
  CMAKE_EXTRA+=("-DCMAKE_PREFIX_PATH=$DEPROOT/usr")
  export LD_LIBRARY_PATH="$DEPROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif ! { dpkg-query -W libfmt-dev doctest-dev >/dev/null 2>&1; }; then
  tools/setup.sh || say "tools/setup.sh failed; trying to configure anyway"
fi

say "configure + build (sm_90 + PTX) in $BUILD"
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA_ARCHS=90 "${CMAKE_EXTRA[@]}" \
      >"$LOG/configure.log" 2>&1; then
  tail -30 "$LOG/configure.log"; echo "gpu-check: FAILED (configure)"; exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" >"$LOG/build.log" 2>&1; then
  grep -E "error|warning" "$LOG/build.log" | head -40; echo "gpu-check: FAILED (build)"; exit 1
fi
warnings=$(grep -c -E "warning" "$LOG/build.log" || true)
if [ ! -x "$BUILD/test_gpu_ops" ]; then
  echo "gpu-check: FAILED: the CUDA backend was not built (nvcc not found at configure time; see $LOG/configure.log)"
  exit 1
fi
say "built ($warnings warning lines)"
"$BUILD/sinklab" info | tee "$LOG/info.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv >"$LOG/nvidia-smi.txt" 2>&1

say "GPU tests"
( cd "$BUILD" && timeout 180 ctest -L gpu --output-on-failure -V ) >"$LOG/tests.log" 2>&1
tests_rc=$?
if grep -q "skipped: no CUDA GPU visible" "$LOG/tests.log"; then
  grep -m1 "skipped: no CUDA GPU visible" "$LOG/tests.log"
  echo "gpu-check: no GPU visible here: the build is done (warning-free: $warnings warning lines), the GPU tests"
  echo "gpu-check: skipped themselves, and nothing was measured. Run this on a machine with a GPU."
  exit 2
fi
grep -E "test_gpu_[a-z]+: |\[doctest\] (test cases|assertions)|rel err|Passed|Failed|\*\*\*|SKIPPED|tests passed" "$LOG/tests.log" | tail -60

# compute-sanitizer on a small subset (memcheck: out-of-bounds and misaligned accesses; racecheck:
# shared-memory hazards in the attention kernels). GPU_CHECK_SANITIZE=0 skips it.
sanitize_rc=77
if [ "${GPU_CHECK_SANITIZE:-1}" = 1 ] && [ $(( $(date +%s) - start )) -gt 240 ]; then
  say "compute-sanitizer skipped: over 4 minutes already (the 8-minute budget)"
elif [ "${GPU_CHECK_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer >/dev/null; then
  say "compute-sanitizer (memcheck, racecheck) on the attention determinism case"
  sanitize_rc=0
  for tool in memcheck racecheck; do
    timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BUILD/test_gpu_ops" \
      -tc="attention is bitwise deterministic" >"$LOG/sanitize_$tool.log" 2>&1
    rc=$?
    echo "compute-sanitizer $tool: rc $rc ($(grep -m1 -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/sanitize_$tool.log"))"
    [ $rc -ne 0 ] && sanitize_rc=$rc
  done
fi

say "GPU benchmark (ours)"
BENCH_ARGS=(--json "$LOG/bench_gpu.jsonl")
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && BENCH_ARGS+=(--quick)
timeout 120 "$BUILD/bench_gpu" "${BENCH_ARGS[@]}" 2>&1 | tee "$LOG/bench_gpu.log"
bench_rc=${PIPESTATUS[0]}

torch_rc=77
if python3 -c "import torch" >/dev/null 2>&1; then
  say "PyTorch yardstick"
  TORCH_ARGS=(--json "$LOG/bench_torch.jsonl")
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && TORCH_ARGS+=(--quick)
  if [ "${GPU_CHECK_NO_COMPILE:-0}" = 1 ]; then
    TORCH_ARGS+=(--no-compile)
  elif [ $(( $(date +%s) - start )) -gt 330 ]; then
    say "over 5.5 minutes already: torch.compile skipped to keep within 8 minutes"
    TORCH_ARGS+=(--no-compile)
  fi
  timeout 200 python3 tools/bench_torch.py "${TORCH_ARGS[@]}" 2>&1 | tee "$LOG/bench_torch.log"
  torch_rc=${PIPESTATUS[0]}
else
  say "PyTorch not found: yardstick skipped"
fi

say "summary"
python3 - "$LOG" "$tests_rc" "$bench_rc" "$torch_rc" "$sanitize_rc" <<'PY' | tee "$LOG/summary.txt"
import json, os, sys
log, tests_rc, bench_rc, torch_rc, san_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def load(name):
    p = os.path.join(log, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
ours, torch = load("bench_gpu.jsonl"), load("bench_torch.jsonl")
print(f"GPU tests:           {'PASSED' if tests_rc == 0 else 'FAILED (rc %d)' % tests_rc}")
print(f"compute-sanitizer:   {'clean' if san_rc == 0 else ('skipped' if san_rc == 77 else 'FAILED (rc %d)' % san_rc)}")
print(f"GPU benchmark:       {'ran' if bench_rc == 0 else 'FAILED (rc %d)' % bench_rc}")
print(f"PyTorch yardstick:   {'ran' if torch_rc == 0 else ('skipped' if torch_rc == 77 else 'FAILED (rc %d)' % torch_rc)}")
att = {(r["variant"], r["head_dim"], r["context"]): r for r in ours if r["bench"] == "attention"}
tatt = {(r["head_dim"], r["context"]): r for r in torch if r["bench"] == "torch_attention"}
verdicts = []
print(f"\n{'D':>4} {'T':>5} | {'softmax fwd/bwd TF/s':>21} | {'sigmoid fwd/bwd TF/s':>21} | {'torch sdpa fwd/bwd':>19}")
for D in (96, 128):
    for T in (2048, 4096):
        s, g, t = att.get(("softmax", D, T)), att.get(("sigmoid", D, T)), tatt.get((D, T))
        f = lambda r: f"{r['fwd_tflops']:8.1f} / {r['bwd_tflops']:8.1f}" if r else f"{'-':>21}"
        print(f"{D:>4} {T:>5} | {f(s):>21} | {f(g):>21} | {f(t):>19}")
        if s and g:
            verdicts.append((f"sigmoid >= softmax (D {D}, T {T})",
                             g["fwd_tflops"] >= s["fwd_tflops"] and g["bwd_tflops"] >= s["bwd_tflops"]))
        if s and t:
            r = (s["fwd_ms"] + s["bwd_ms"]) / (t["fwd_ms"] + t["bwd_ms"])
            verdicts.append((f"softmax >= 0.8x torch sdpa fwd+bwd (D {D}, T {T}): {1 / r:.2f}x", 1 / r >= 0.8))
models = {r["variant"]: r for r in ours if r["bench"] == "model"}
tmodels = {r["mode"]: r for r in torch if r["bench"] == "torch_model"}
print()
for v, r in models.items():
    print(f"ours  tinyllama-60m {v:<8}: {r['tokens_per_s']:>10.0f} tokens/s, bf16 MFU {100 * r['mfu_bf16']:.1f}%")
    verdicts.append((f"MFU >= 40% ({v}): {100 * r['mfu_bf16']:.1f}%", r["mfu_bf16"] >= 0.40))
for m, r in tmodels.items():
    print(f"torch tinyllama-60m {m:<8}: {r['tokens_per_s']:>10.0f} tokens/s, bf16 MFU {100 * r['mfu_bf16']:.1f}%")
if "softmax" in models and tmodels:
    best = max(r["tokens_per_s"] for r in tmodels.values())
    ratio = models["softmax"]["tokens_per_s"] / best
    verdicts.append((f"model >= 1.2x torch's best tokens/s: {ratio:.2f}x", ratio >= 1.2))
print("\ntargets:")
for name, ok in verdicts:
    print(f"  [{'met' if ok else 'MISSED'}] {name}")
PY
say "done; logs in $LOG"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && { [ "$sanitize_rc" -eq 0 ] || [ "$sanitize_rc" -eq 77 ]; }
