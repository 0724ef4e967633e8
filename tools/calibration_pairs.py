#!/usr/bin/env python3
"""Print the calibration sweep as one row per lever: softmax beside sigmoid.

    python3 tools/calibration_pairs.py [docs/calibration.json]

The input is the table.json that `sinklab experiment calibration` writes (tools/calibrate.sh copies
it to docs/calibration.json): rows named "softmax, LEVER" and "sigmoid, LEVER". Each measure is
printed as "softmax / sigmoid". The sink is Sink_1, or Sink_3 for the lever that writes a fixed
token at position 3 (the first token is then ordinary text). The rows are sorted by the softmax
minus sigmoid difference of that sink, largest first; the README's calibration table is this
output.
"""
import json
import sys


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/calibration.json"
    with open(path) as f:
        table = json.load(f)
    by_lever = {}
    order = []
    for row in table["rows"]:
        attention, _, lever = row["name"].partition(", ")
        if lever not in by_lever:
            by_lever[lever] = {}
            order.append(lever)
        by_lever[lever][attention] = row

    def measure(row, key):
        value = row.get("measured", {}).get(key)
        return value if isinstance(value, (int, float)) else None

    lines = []
    for lever in order:
        pair = by_lever[lever]
        if "softmax" not in pair or "sigmoid" not in pair:
            continue
        sink_key = "sink_3" if "position 3" in lever else "sink_1"
        soft, sig = pair["softmax"], pair["sigmoid"]
        s_soft, s_sig = measure(soft, sink_key), measure(sig, sink_key)
        gap = (s_soft - s_sig) if s_soft is not None and s_sig is not None else float("-inf")

        def cell(key, spec):
            a, b = measure(soft, key), measure(sig, key)
            fa = format(a, spec) if a is not None else "-"
            fb = format(b, spec) if b is not None else "-"
            return f"{fa} / {fb}"

        val = f"{soft['val_loss']:.3f} / {sig['val_loss']:.3f}" if soft.get("val_loss") and sig.get("val_loss") else "-"
        name = lever + (" (Sink_3)" if sink_key == "sink_3" else "")
        lines.append((gap, f"| {name} | {cell(sink_key, '.2f')} | {gap:+.2f} | {cell('alpha_1', '.3f')} | "
                           f"{cell('massive_ratio', '.2f')} | {val} |"))
    print("| lever | Sink_1 (%) softmax / sigmoid | difference | alpha_1 | first-token norm ratio | val loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for _, line in sorted(lines, key=lambda item: -item[0]):
        print(line)


if __name__ == "__main__":
    main()
