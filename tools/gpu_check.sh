#!/usr/bin/env bash
# make gpu-check: the CUDA backend on a real GPU, in one command that prints one summary.
#   1. build for sm_90 (+ PTX) in build-gpu/ (or use binaries built elsewhere: GPU_PREBUILT=DIR)
#   2. the GPU test suites (tests/test_gpu_*.cpp): every operation and the whole model against the
#      CPU reference, the `small` preset for 20 steps under every attention variant (fp32, 1e-5)
#   3. bf16 against fp32: the same 300-step `small` run (the make run setting) in both precisions on
#      the default corpus (data/cache/linux-doc-2048; skipped when it is not prepared)
#   4. the GPU benchmark (tools/bench_gpu.cpp): attention kernels, tinyllama-60m step, memory
#   5. PyTorch's yardstick in the same call (tools/bench_torch.py; skipped without PyTorch)
#   6. compute-sanitizer: memcheck on every operation test, racecheck on the attention kernels
# Logs and JSON go to $OUT when that variable is set, else to build-gpu/gpu-check/.
# Budget: about 8 minutes on one H200 (build 1, tests 1, bf16 run 0.5, benchmark 1.5, PyTorch 2.5,
# sanitizer 1.5); each stage has a timeout, and a stage that would start after GPU_CHECK_BUDGET
# seconds (default 540) is skipped and says so.
#   GPU_CHECK_STAGES=tests,curve,bench,torch,sanitize   the stages to run (default: all)
#   GPU_CHECK_QUICK=1        fewer benchmark repetitions
#   GPU_BENCH_ONLY=LIST      the parts of bench_gpu to run (its --only; default: all)
#   GPU_CHECK_TEST_TIMEOUT=S seconds each GPU test suite may take (default 240)
#   GPU_CHECK_NO_COMPILE=1   skip torch.compile in the yardstick
#   GPU_PREBUILT=DIR         take sinklab, test_gpu_ops, test_gpu_model, bench_gpu from DIR when
#                            they run here (else build)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${GPU_BUILD:-build-gpu}
LOG=${OUT:-$BUILD/gpu-check}
STAGES=",${GPU_CHECK_STAGES:-tests,curve,bench,torch,sanitize},"
BUDGET=${GPU_CHECK_BUDGET:-540}
mkdir -p "$BUILD" "$LOG"
LOG=$(cd "$LOG" && pwd)
JOBS=$(nproc)
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
say() { echo "[gpu-check $(elapsed)s] $*"; }
# stage NAME: true when NAME was asked for and the budget is not spent (says why otherwise).
stage() {
  [[ "$STAGES" == *",$1,"* ]] || return 1
  if [ "$(elapsed)" -gt "$BUDGET" ]; then say "$1 skipped: over the ${BUDGET}s budget"; return 1; fi
  return 0
}
# Where the CUDA libraries may be on a machine whose loader does not know them.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- dependencies: use the system's; else unpack carried Debian packages (.deps/, see
# tools/fetch_gpu_deps.sh) into the build folder; else try tools/setup.sh (needs the network).
CMAKE_EXTRA=()
if compgen -G ".deps/*.deb" >/dev/null; then
  DEPROOT=$ROOT/$BUILD/deps
  if [ ! -d "$DEPROOT/usr" ]; then
    for f in .deps/*.deb; do dpkg -x "$f" "$DEPROOT"; done
  fi
  CMAKE_EXTRA+=("-DCMAKE_PREFIX_PATH=$DEPROOT/usr")
  export LD_LIBRARY_PATH="$DEPROOT/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH"
elif ! { dpkg-query -W libfmt-dev doctest-dev >/dev/null 2>&1; }; then
  tools/setup.sh || say "tools/setup.sh failed; trying to configure anyway"
fi

BIN=$BUILD
if [ -n "${GPU_PREBUILT:-}" ] && "$GPU_PREBUILT/sinklab" info >"$LOG/prebuilt.txt" 2>&1; then
  BIN=$GPU_PREBUILT
  say "using the binaries in $BIN (built elsewhere; they run here)"
  warnings="(built elsewhere)"
else
  [ -n "${GPU_PREBUILT:-}" ] && { say "the binaries in $GPU_PREBUILT do not run here:"; tail -3 "$LOG/prebuilt.txt"; }
  say "configure + build (sm_90 + PTX) in $BUILD"
  if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA_ARCHS=90 "${CMAKE_EXTRA[@]}" \
        >"$LOG/configure.log" 2>&1; then
    tail -30 "$LOG/configure.log"; echo "gpu-check: FAILED (configure)"; exit 1
  fi
  if ! cmake --build "$BUILD" -j "$JOBS" >"$LOG/build.log" 2>&1; then
    grep -E "error|warning" "$LOG/build.log" | head -40; echo "gpu-check: FAILED (build)"; exit 1
  fi
  warnings=$(grep -c -E "warning" "$LOG/build.log" || true)
  say "built ($warnings warning lines)"
fi
if [ ! -x "$BIN/test_gpu_ops" ]; then
  echo "gpu-check: FAILED: the CUDA backend was not built (nvcc not found at configure time; see $LOG/configure.log)"
  exit 1
fi
"$BIN/sinklab" info | tee "$LOG/info.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,driver_version --format=csv >"$LOG/nvidia-smi.txt" 2>&1

tests_rc=77
if stage tests; then
  say "GPU tests"
  tests_rc=0
  for t in test_gpu_ops test_gpu_model; do
    timeout "${GPU_CHECK_TEST_TIMEOUT:-240}" "$BIN/$t" >"$LOG/$t.log" 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then
      cat "$LOG/$t.log"
      echo "gpu-check: no GPU visible here: the build is done ($warnings warning lines), the GPU tests"
      echo "gpu-check: skipped themselves, and nothing was measured. Run this on a machine with a GPU."
      exit 2
    fi
    grep -E "rel err|ERROR|FAILED|failed|CUDA error|what\(\)|test cases|assertions" "$LOG/$t.log" | tail -45
    say "$t: rc $rc"
    [ $rc -ne 0 ] && tests_rc=$rc
  done
fi

# bf16 against fp32: 300 steps of the make run setting (small preset, batch 16 x 64, lr 3e-3,
# first token <|endoftext|>) from the same initialisation on the same batches.
curve_rc=77
DATA=data/cache/linux-doc-2048
if stage curve; then
  if [ -f "$DATA/train_000.bin" ]; then
    say "bf16 vs fp32: 300 steps of small"
    curve_rc=0
    for dtype in fp32 bf16; do
      rm -rf "$BUILD/curve_$dtype"
      timeout 120 "$BIN/sinklab" train --data "$DATA/train_000.bin" --preset small --steps 300 --batch 16 --seq 64 \
        --lr 3e-3 --warmup 100 --first-token 2047 --log-every 100 --device cuda --dtype "$dtype" \
        --out "$BUILD/curve_$dtype" >"$LOG/curve_$dtype.log" 2>&1 || curve_rc=1
      tail -2 "$LOG/curve_$dtype.log"
    done
    python3 - "$BUILD/curve_fp32/metrics.jsonl" "$BUILD/curve_bf16/metrics.jsonl" <<'PY' | tee "$LOG/curve.json" || curve_rc=1
import json, sys
load = lambda p: [json.loads(l) for l in open(p)]
a, b = load(sys.argv[1]), load(sys.argv[2])
la = [r["loss"] for r in a if "loss" in r]
lb = [r["loss"] for r in b if "loss" in r]
assert len(la) == len(lb) == 300, (len(la), len(lb))
step_rel = [abs(y - x) / x for x, y in zip(la, lb)]
win = lambda l, i: sum(l[i:i + 10]) / 10
win_rel = [abs(win(lb, i) - win(la, i)) / win(la, i) for i in range(0, 300, 10)]
def tps(rs):
    v = sorted(r["tokens_per_s"] for r in rs if "tokens_per_s" in r)
    return v[len(v) // 2]
out = {"bench": "bf16_curve", "steps": 300, "fp32_last10": win(la, 290), "bf16_last10": win(lb, 290),
       "max_step_rel": max(step_rel), "max_window10_rel": max(win_rel), "fp32_tokens_per_s": tps(a),
       "bf16_tokens_per_s": tps(b)}
print(json.dumps(out))
sys.exit(0 if out["max_window10_rel"] <= 0.02 else 1)
PY
  else
    say "bf16 vs fp32 skipped: $DATA is not prepared (make data VOCAB_SIZE=2048, or carry it)"
  fi
fi

bench_rc=77
if stage bench; then
  say "GPU benchmark (ours)"
  BENCH_ARGS=(--json "$LOG/bench_gpu.jsonl")
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && BENCH_ARGS+=(--quick)
  [ -n "${GPU_BENCH_ONLY:-}" ] && BENCH_ARGS+=(--only "$GPU_BENCH_ONLY")
  timeout 150 "$BIN/bench_gpu" "${BENCH_ARGS[@]}" 2>&1 | tee "$LOG/bench_gpu.log"
  bench_rc=${PIPESTATUS[0]}
fi

torch_rc=77
if stage torch; then
  if python3 -c "import torch" >/dev/null 2>&1; then
    say "PyTorch yardstick"
    TORCH_ARGS=(--json "$LOG/bench_torch.jsonl")
    [ "${GPU_CHECK_QUICK:-0}" = 1 ] && TORCH_ARGS+=(--quick)
    if [ "${GPU_CHECK_NO_COMPILE:-0}" = 1 ]; then
      TORCH_ARGS+=(--no-compile)
    elif [ "$(elapsed)" -gt $(( BUDGET - 150 )) ]; then
      say "torch.compile skipped to stay within the ${BUDGET}s budget"
      TORCH_ARGS+=(--no-compile)
    fi
    PYTHONUNBUFFERED=1 timeout 200 python3 tools/bench_torch.py "${TORCH_ARGS[@]}" 2>&1 | tee "$LOG/bench_torch.log"
    torch_rc=${PIPESTATUS[0]}
  else
    say "PyTorch not found: yardstick skipped"
  fi
fi

# compute-sanitizer: memcheck (out-of-bounds and misaligned accesses) over every operation test,
# racecheck (shared-memory hazards) on the attention kernels.
sanitize_rc=77
if stage sanitize; then
  if command -v compute-sanitizer >/dev/null; then
    say "compute-sanitizer"
    sanitize_rc=0
    for run in "memcheck|" "racecheck|-tc=attention is bitwise deterministic"; do
      tool=${run%%|*}; filter=${run#*|}
      args=(); [ -n "$filter" ] && args=("$filter")
      timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/test_gpu_ops" "${args[@]}" \
        >"$LOG/sanitize_$tool.log" 2>&1
      rc=$?
      echo "compute-sanitizer $tool: rc $rc ($(grep -m1 -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/sanitize_$tool.log"))"
      [ $rc -ne 0 ] && { sanitize_rc=$rc; grep -m12 -E "=========" "$LOG/sanitize_$tool.log"; }
    done
  else
    say "compute-sanitizer not found: skipped"
  fi
fi

say "summary"
python3 - "$LOG" "$tests_rc" "$curve_rc" "$bench_rc" "$torch_rc" "$sanitize_rc" <<'PY' | tee "$LOG/summary.txt"
import json, os, re, sys
log = sys.argv[1]
tests_rc, curve_rc, bench_rc, torch_rc, san_rc = map(int, sys.argv[2:7])
def load(name):
    p = os.path.join(log, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
def state(rc, ok="passed"):
    return ok if rc == 0 else ("skipped" if rc == 77 else "FAILED (rc %d)" % rc)
gpu = open(os.path.join(log, "nvidia-smi.txt")).read().splitlines()[-1] if os.path.exists(os.path.join(log, "nvidia-smi.txt")) else "?"
print(f"GPU:                 {gpu}")
print(f"GPU tests:           {state(tests_rc)}")
print(f"bf16 vs fp32 curve:  {state(curve_rc)}")
print(f"GPU benchmark:       {state(bench_rc, 'ran')}")
print(f"PyTorch yardstick:   {state(torch_rc, 'ran')}")
print(f"compute-sanitizer:   {state(san_rc, 'clean')}")
verdicts = []
small = os.path.join(log, "test_gpu_model.log")
if os.path.exists(small):
    for line in open(small):
        m = re.search(r"small fp32 (\S+): .*loss ([0-9.e+-]+), grad norm ([0-9.e+-]+)", line)
        if m:
            v, el, en = m.group(1), float(m.group(2)), float(m.group(3))
            verdicts.append((f"small fp32 20 steps vs CPU, {v}: loss {el:.1e}, grad norm {en:.1e} (<= 1e-5)",
                             el <= 1e-5 and en <= 1e-5))
for r in load("curve.json"):
    print(f"\nbf16 vs fp32, 300 steps of small: loss over the last 10 steps {r['fp32_last10']:.4f} (fp32) "
          f"{r['bf16_last10']:.4f} (bf16); {r['fp32_tokens_per_s']:.0f} / {r['bf16_tokens_per_s']:.0f} tokens/s")
    verdicts.append((f"bf16 curve within 2% of fp32 (10-step means): worst {100 * r['max_window10_rel']:.2f}% "
                     f"(single steps {100 * r['max_step_rel']:.2f}%)", r["max_window10_rel"] <= 0.02))
ours, torch = load("bench_gpu.jsonl"), load("bench_torch.jsonl")
att = {(r["variant"], r["head_dim"], r["context"]): r for r in ours if r["bench"] == "attention"}
tatt = {(r["head_dim"], r["context"]): r for r in torch if r["bench"] == "torch_attention"}
if att or tatt:
    print(f"\n{'D':>4} {'T':>5} {'BxH':>5} | {'softmax fwd/bwd TF/s':>21} | {'sigmoid fwd/bwd TF/s':>21} | {'flash sdpa fwd/bwd':>19}")
for (D, T) in sorted({(k[1], k[2]) for k in att} | set(tatt)):
    s, g, t = att.get(("softmax", D, T)), att.get(("sigmoid", D, T)), tatt.get((D, T))
    f = lambda r: f"{r['fwd_tflops']:8.1f} / {r['bwd_tflops']:8.1f}" if r else f"{'-':>21}"
    anyr = s or g or t
    print(f"{D:>4.0f} {T:>5.0f} {int(anyr['batch'])}x{int(anyr['heads'])} | {f(s):>21} | {f(g):>21} | {f(t):>19}")
    if s and g:
        verdicts.append((f"sigmoid >= softmax fwd+bwd (D {D:.0f}, T {T:.0f}): {(s['fwd_ms'] + s['bwd_ms']) / (g['fwd_ms'] + g['bwd_ms']):.2f}x",
                         g["fwd_ms"] + g["bwd_ms"] <= s["fwd_ms"] + s["bwd_ms"]))
    if s and t:
        r = (t["fwd_ms"] + t["bwd_ms"]) / (s["fwd_ms"] + s["bwd_ms"])
        verdicts.append((f"softmax >= 0.8x flash sdpa fwd+bwd (D {D:.0f}, T {T:.0f}): {r:.2f}x", r >= 0.8))
models = {r["variant"]: r for r in ours if r["bench"] == "model"}
tmodels = {r["mode"]: r for r in torch if r["bench"] == "torch_model"}
if models or tmodels:
    print()
for v, r in models.items():
    print(f"ours  tinyllama-60m {v:<8}: {r['tokens_per_s']:>10.0f} tokens/s, bf16 MFU {100 * r['mfu_bf16']:.1f}%, "
          f"{r['step_ms']:.1f} ms/step at 8 x 2048, peak {r['peak_device_gib']:.2f} GiB")
    verdicts.append((f"MFU >= 40% ({v}): {100 * r['mfu_bf16']:.1f}%", r["mfu_bf16"] >= 0.40))
for m, r in tmodels.items():
    print(f"torch tinyllama-60m {m:<8}: {r['tokens_per_s']:>10.0f} tokens/s, bf16 MFU {100 * r['mfu_bf16']:.1f}%, "
          f"{r['step_ms']:.1f} ms/step, peak {r.get('peak_device_gib', float('nan')):.2f} GiB")
prof = sorted((r for r in ours if r["bench"] == "profile"), key=lambda r: -r["ms"])
for r in ours:
    if r["bench"] == "profile_total":
        print(f"\nprofile of the softmax step: {r['step_ms']:.1f} ms, of which labelled {r['labelled_ms']:.1f} ms; largest:")
        for p in prof[:10]:
            print(f"  {p['op']:<34} {p['calls']:>4} calls {p['ms']:>8.2f} ms {100 * p['share']:>5.1f}%")
for r in ours:
    if r["bench"] == "largest_batch":
        print(f"largest batch of 2048-token sequences that fits (tinyllama-60m, ours): {r['largest_batch']:.0f}")
if "softmax" in models and tmodels:
    best = max(r["tokens_per_s"] for r in tmodels.values())
    ratio = models["softmax"]["tokens_per_s"] / best
    verdicts.append((f"model >= 1.2x torch's best tokens/s: {ratio:.2f}x", ratio >= 1.2))
print("\ntargets:")
for name, ok in verdicts:
    print(f"  [{'met' if ok else 'MISSED'}] {name}")
PY
say "done; logs in $LOG"
for rc in "$tests_rc" "$curve_rc" "$bench_rc" "$sanitize_rc"; do
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit 1
done
exit 0
