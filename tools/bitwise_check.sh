#!/usr/bin/env bash
# The check that a refactoring changed no result: builds an earlier commit beside the current tree
# (a git worktree), runs the same fixed set of commands with both binaries on the same data, and
# compares what they wrote, byte for byte.
#   tools/bitwise_check.sh [BASE]     BASE: a commit (default: the value of $BITWISE_BASE, else HEAD~1)
# The commands, under each attention variant (softmax, sigmoid, sigmoid-norm, elu, elu-norm), with
# 2 OpenMP threads on the CPU:
#   sinklab train --preset tiny  --steps 200     (batch 8 x 32 tokens)
#   sinklab train --preset small --steps 300     (batch 16 x 64 tokens, the make run setting)
#   sinklab sink --checkpoint RUN --probe probe.bin --json sink.json   (for each of the two runs;
#                                                 the first 32 tokens of each probe for tiny)
# Compared: metrics.jsonl without its timing fields (tokens_per_s, threads), the final checkpoint's
# model.safetensors and state.bin, and sink.json. Data: the default corpus at a 2048-id vocabulary
# (data/cache/linux-doc-2048, prepared by tools/make_data.sh when missing).
# Work folder: build-bitwise/ (the two builds, the runs); the summary goes to build-bitwise/report.txt.
# Exit code 0 when every file matches, 1 otherwise.
# SPEED=N (default 0): afterwards, N alternating pairs of timed runs (base, new) of the `small`
# training step at batch 16 x 256 (60 steps, all cores) and the median tokens/s of each binary
# (steps 11-60 of each run), to see that a refactoring cost no speed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${1:-${BITWISE_BASE:-HEAD~1}}
WORK=$ROOT/build-bitwise
BASE_SHA=$(git rev-parse --verify "$BASE^{commit}") || { echo "bitwise_check: unknown commit '$BASE'" >&2; exit 2; }
NEW_DESC="working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!build-bitwise' || echo ' + uncommitted changes')"
mkdir -p "$WORK"
say() { echo "[bitwise_check] $*"; }

# ---- the two binaries (CPU only: CUDA plays no part in these commands) ----
build() {  # build SRC_DIR BUILD_DIR
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA=OFF >"$2.configure.log" 2>&1
  cmake --build "$2" -j "$(nproc)" --target sinklab >"$2.build.log" 2>&1 || { tail -20 "$2.build.log"; exit 1; }
}
if [ ! -d "$WORK/base-src" ] || [ "$(git -C "$WORK/base-src" rev-parse HEAD 2>/dev/null)" != "$BASE_SHA" ]; then
  rm -rf "$WORK/base-src" "$WORK/base-build"
  git worktree prune
  git worktree add --detach "$WORK/base-src" "$BASE_SHA" >/dev/null
fi
say "building the base ($(git rev-parse --short "$BASE_SHA")) and the new tree ($NEW_DESC)"
mkdir -p "$WORK/base-build" "$WORK/new-build"
build "$WORK/base-src" "$WORK/base-build"
build "$ROOT" "$WORK/new-build"

# ---- data ----
DATA=data/cache/linux-doc-2048
if [ ! -f "$DATA/prepare.json" ]; then
  say "preparing $DATA"
  tools/setup.sh --data
  OUT=$DATA VOCAB_SIZE=2048 SINKLAB_BIN="$WORK/new-build/sinklab" tools/make_data.sh
fi

# ---- the commands, run by each binary in its own folder with the same relative paths ----
VARIANTS=(softmax sigmoid sigmoid-norm elu elu-norm)
run_all() {  # run_all NAME BINARY
  local dir=$WORK/$1 bin=$2
  rm -rf "$dir" && mkdir -p "$dir" && ln -s "$ROOT/$DATA" "$dir/data"
  (
    cd "$dir"
    for v in "${VARIANTS[@]}"; do
      "$bin" train --data data/train_000.bin --preset tiny --steps 200 --batch 8 --seq 32 --lr 1e-3 \
        --attention "$v" --threads 2 --log-every 1000 --eval-every 0 --device cpu --out "runs/tiny-$v" >/dev/null
      "$bin" train --data data/train_000.bin --preset small --steps 300 --batch 16 --seq 64 --lr 3e-3 \
        --first-token 2047 --attention "$v" --threads 2 --log-every 1000 --eval-every 0 --device cpu \
        --out "runs/small-$v" >/dev/null
      OMP_NUM_THREADS=2 "$bin" sink --checkpoint "runs/tiny-$v" --probe data/probe.bin --length 32 \
        --json "runs/tiny-$v/sink.json" >/dev/null  # tiny's context is 32
      OMP_NUM_THREADS=2 "$bin" sink --checkpoint "runs/small-$v" --probe data/probe.bin \
        --json "runs/small-$v/sink.json" >/dev/null
    done
  )
}
say "running the commands with the base binary"
run_all base-runs "$WORK/base-build/sinklab"
say "running the commands with the new binary"
run_all new-runs "$WORK/new-build/sinklab"

# ---- compare ----
strip_timing() { python3 -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); r.pop("tokens_per_s", None); r.pop("threads", None); print(json.dumps(r, sort_keys=True))' "$1"; }
report=$WORK/report.txt
: >"$report"
same=0 differ=0
for v in "${VARIANTS[@]}"; do
  for size in tiny small; do
    run=runs/$size-$v
    step=$(cat "$WORK/new-runs/$run/checkpoints/latest")  # the name of the last checkpoint
    for f in metrics.jsonl "checkpoints/$step/model.safetensors" "checkpoints/$step/state.bin" sink.json; do
      a=$WORK/base-runs/$run/$f b=$WORK/new-runs/$run/$f
      if [ "$f" = metrics.jsonl ]; then
        cmp -s <(strip_timing "$a") <(strip_timing "$b") && ok=1 || ok=0
      else
        cmp -s "$a" "$b" && ok=1 || ok=0
      fi
      if [ $ok = 1 ]; then same=$((same + 1)); r=identical; else differ=$((differ + 1)); r=DIFFERS; fi
      printf '%-10s %-36s %s\n' "$r" "$run/$f" "$(sha256sum "$b" 2>/dev/null | cut -c1-16)" >>"$report"
    done
  done
done
{
  echo "base $(git rev-parse --short "$BASE_SHA") vs $NEW_DESC, $(uname -m), $(if grep -q -m1 avx512f /proc/cpuinfo; then echo AVX-512; elif grep -q -m1 avx2 /proc/cpuinfo; then echo AVX2; else uname -m; fi)"
  echo "$same files identical, $differ differ"
} | tee -a "$report"
grep DIFFERS "$report" || true

if [ "${SPEED:-0}" -gt 0 ]; then
  say "speed: $SPEED alternating pairs of 60-step small runs at 16 x 256"
  speed_run() {  # speed_run BINARY -> median tokens/s of steps 11..60
    rm -rf "$WORK/speed-run"
    "$1" train --data "$ROOT/$DATA/train_000.bin" --preset small --steps 60 --batch 16 --seq 256 --log-every 1000 \
      --eval-every 0 --device cpu --out "$WORK/speed-run" >/dev/null
    python3 -c 'import json, sys
v = sorted(json.loads(l)["tokens_per_s"] for l in open(sys.argv[1]) if json.loads(l)["step"] > 10)
print(v[len(v) // 2])' "$WORK/speed-run/metrics.jsonl"
  }
  base_tps=() new_tps=()
  for i in $(seq "$SPEED"); do
    base_tps+=("$(speed_run "$WORK/base-build/sinklab")")
    new_tps+=("$(speed_run "$WORK/new-build/sinklab")")
  done
  python3 - "${base_tps[@]}" "${new_tps[@]}" <<'PY' | tee -a "$report"
import sys
values = [float(x) for x in sys.argv[1:]]
n = len(values) // 2
base, new = sorted(values[:n]), sorted(values[n:])
runs = lambda v: " ".join("%.0f" % x for x in v)
print("tokens/s, small 16 x 256: base %.0f (runs %s), new %.0f (runs %s), new / base %.3f"
      % (base[n // 2], runs(base), new[n // 2], runs(new), new[n // 2] / base[n // 2]))
PY
fi
[ "$differ" -eq 0 ]
