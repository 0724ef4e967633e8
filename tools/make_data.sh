#!/usr/bin/env bash
# Prepares a corpus from Debian's documentation packages (reStructuredText sources, leading
# boilerplate stripped: docs/data.md) into OUT: tokenizer.bin (BPE, VOCAB_SIZE ids), train_*.bin,
# val_000.bin (200 held-out documents), probe.bin (100 x 64 tokens), prepare.json.
#   CORPUS=linux-doc (default): the Linux kernel documentation (linux-doc package, the sources under
#     /usr/share/doc/linux-doc-*/html/_sources), English only (the translations/ tree is left out)
#   CORPUS=python-doc: the Python documentation (python3-doc, /usr/share/doc/python3.*/html/_sources)
#
# A no-op when the output is complete (prepare.json exists) and was made from the same package
# version, the same options and the same tokenizer/preparation code (recorded in OUT.stamp).
#   tools/make_data.sh                 (what `make data` runs, after tools/setup.sh --data)
#   VOCAB_SIZE=4096 OUT=data/cache/linux-doc-4k tools/make_data.sh
#   CORPUS=python-doc VOCAB_SIZE=2048 OUT=data/cache/python-doc-2048 tools/make_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SINKLAB_BIN:-build/sinklab}
CORPUS=${CORPUS:-linux-doc}
OUT=${OUT:-data/cache/$CORPUS}
VOCAB_SIZE=${VOCAB_SIZE:-8192}

case "$CORPUS" in
  linux-doc) pattern='/usr/share/doc/linux-doc-*/html/_sources'; exclude=(--exclude translations/) ;;
  python-doc) pattern='/usr/share/doc/python3.*/html/_sources'; exclude=() ;;
  *) echo "make_data.sh: unknown CORPUS '$CORPUS' (use linux-doc or python-doc)" >&2; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "make_data.sh: $BIN not found: run make first" >&2; exit 1; }
# shellcheck disable=SC2086  # the pattern is a glob
src=$(ls -d $pattern 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$src" ]; then
  echo "make_data.sh: no $pattern: the $CORPUS corpus is not installed: run CORPUS=$CORPUS tools/setup.sh --data" >&2
  exit 1
fi
package=$(dpkg -S "$src" 2>/dev/null | head -n 1 | cut -d: -f1 || true)
version=$(dpkg-query -W -f='${Package} ${Version}' "${package:-$CORPUS}" 2>/dev/null || echo "unknown")

args=(--input "$src" "${exclude[@]}" --strip-rst-boilerplate --vocab-size "$VOCAB_SIZE"
      --val-docs 200 --probe-docs 100 --probe-length 64 --seed 1337)
code=$(cat src/data/tokenizer.cpp src/data/pretokenize.cpp src/data/unicode_tables.inc src/data/prepare.cpp | sha1sum | cut -c1-12)
stamp="$("$BIN" --version) | $version | code $code | ${args[*]}"

if [ -f "$OUT/prepare.json" ] && [ -f "$OUT.stamp" ] && [ "$(cat "$OUT.stamp")" = "$stamp" ]; then
  echo "make_data.sh: $OUT is up to date ($version)"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT.stamp"
"$BIN" prepare "${args[@]}" --out "$OUT" --force
printf '%s\n' "$stamp" > "$OUT.stamp"
