#!/usr/bin/env python3
"""Splice measured experiment tables into docs/results.md.

docs/results.md holds hand-written readings around blocks of the form

    <!-- results NAME SCALE -->
    ...
    <!-- /results -->

This script replaces each block's inside with the table that `sinklab experiment NAME --scale SCALE`
wrote to results/NAME/SCALE/table.md (its table and footnotes; the title, the description and the
scale paragraph are left out, docs/results.md says them once). A block whose results are missing
here keeps the table it has (measured in another checkout or on another machine: results/ is not
committed); one without a table says that it is not measured and names the command that makes it.
Usage, from the repository root:

    python3 tools/results_doc.py [--check]

--check exits 1 (and changes nothing) when docs/results.md is not up to date with results/.
"""
import pathlib
import re
import sys

DOC = pathlib.Path("docs/results.md")
BLOCK = re.compile(r"(<!-- results (\S+) (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)


def table_body(name: str, scale: str, current: str) -> str:
    path = pathlib.Path("results") / name / scale / "table.md"
    if not path.exists():
        if "\n|" in "\n" + current:  # a table measured elsewhere: kept
            return current.strip("\n") + "\n"
        return (f"*Not measured yet on this machine: `make experiment NAME={name} SCALE={scale}` "
                f"writes {path}, then `python3 tools/results_doc.py`.*\n")
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    return "\n".join(lines[start:]).rstrip() + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    text = DOC.read_text()
    updated = BLOCK.sub(lambda m: m.group(1) + "\n" + table_body(m.group(2), m.group(3), m.group(4)) + "\n" + m.group(5), text)
    if updated == text:
        print(f"{DOC}: up to date")
        return 0
    if check:
        print(f"{DOC}: out of date with results/ (run python3 tools/results_doc.py)")
        return 1
    DOC.write_text(updated)
    print(f"{DOC}: tables updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
