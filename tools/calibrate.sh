#!/usr/bin/env bash
# The calibration sweep behind `make run` (`make calibrate`): every lever of the variant issues at
# the laptop recipe, each trained once under softmax and once under sigmoid attention without
# normalisation at equal budget (experiments/calibration.json: 15 levers, 30 runs, 46M tokens,
# about 80 minutes on 2 cores), scored by Sink_1 (Sink_3 where the fixed token sits at position 3),
# mean alpha_1, the first token's residual-norm ratio and validation loss.
#   1. prepare the corpus (cached; tools/make_data.sh, 2,048 BPE ids)
#   2. sinklab experiment calibration: trains what is missing (finished runs are skipped, an
#      interrupted one resumes from its last checkpoint), one progress line; the runs go to
#      runs/experiments/calibration/laptop
#   3. the table: results/calibration/laptop/table.{md,json}, copied to docs/calibration.json and
#      spliced into docs/results.md (tools/results_doc.py, when python3 is there)
# Environment: CORPUS=python-doc sweeps the second corpus (its runs and table go to
# runs/experiments/calibration/laptop-python-doc and results/calibration/laptop-python-doc, and
# nothing is copied into docs/).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SINKLAB_BIN:-build/sinklab}
CORPUS=${CORPUS:-linux-doc}
VOCAB_SIZE=2048  # the laptop scale's vocabulary (experiments/scales.json)
DATA=data/cache/${CORPUS}-${VOCAB_SIZE}
suffix=""
[ "$CORPUS" != linux-doc ] && suffix="-$CORPUS"
RUNS=runs/experiments/calibration/laptop$suffix
RESULTS=results/calibration/laptop$suffix

CORPUS=$CORPUS OUT=$DATA VOCAB_SIZE=$VOCAB_SIZE tools/make_data.sh
"$BIN" experiment calibration --scale laptop --data-dir "$DATA" --runs "$RUNS" --results "$RESULTS"

if [ "$CORPUS" = linux-doc ]; then
  cp "$RESULTS/table.json" docs/calibration.json
  echo "copied $RESULTS/table.json to docs/calibration.json"
  if command -v python3 >/dev/null; then
    python3 tools/results_doc.py
  else
    echo "python3 not found: run tools/results_doc.py to put the table into docs/results.md"
  fi
fi
