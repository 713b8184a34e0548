"""Do two full runs agree? Every measured cell of two RESULTS.md files, side by side.

    python -m benchmarks.compare benchmarks/results/RESULTS.md /tmp/second/RESULTS.md

For every table row present in both, each numeric cell is compared. A cell written ``median
(min-max)`` agrees when each run's median lies within the other's spread; a bare number agrees
when the two are within 10% of each other. Prints one line per cell that differs, then a count;
exits 1 if any cell disagrees (``--all`` prints the cells that agree too).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"
_SPREAD = re.compile(rf"^\s*({_NUMBER})\s*\(({_NUMBER})-({_NUMBER})\)")
_BARE = re.compile(rf"^\s*({_NUMBER})\s*(?:%|x|ms|s|KiB|MiB)?\s*$")
TOLERANCE = 0.10
"""How far apart two single figures (no spread) may be and still agree."""


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def cells(path: Path) -> dict[tuple[str, str, str], str]:
    """Every table cell of *path*: (table title, row key, column) -> text."""
    found: dict[tuple[str, str, str], str] = {}
    title, header = "", []
    for line in path.read_text().splitlines():
        if line.startswith("### "):
            title, header = line[4:], []
        elif line.startswith("|") and not line.startswith("|---"):
            row = [cell.strip() for cell in line.strip("|").split("|")]
            if not header:
                header = row
                continue
            # The row's key: its first cell, with the runner in the throughput tables.
            key = " / ".join(row[:2]) if header[0] == "concurrency" else row[0]
            for column, cell in zip(header, row, strict=False):
                found[(title, key, column)] = cell
    return found


def agree(first: str, second: str) -> bool | None:
    """Whether two cells agree; None when they are not measurements."""
    a, b = _SPREAD.match(first), _SPREAD.match(second)
    if a and b:
        (ma, la, ha), (mb, lb, hb) = (map(_num, m.groups()) for m in (a, b))
        return la <= mb <= ha or lb <= ma <= hb
    a, b = _BARE.match(first), _BARE.match(second)
    if a and b:
        x, y = _num(a.group(1)), _num(b.group(1))
        return abs(x - y) <= TOLERANCE * max(abs(x), abs(y), 1e-9)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--all", action="store_true", help="also print the cells that agree")
    args = parser.parse_args(argv)
    one, two = cells(args.first), cells(args.second)
    compared = differ = 0
    for where, text in one.items():
        if where not in two:
            continue
        verdict = agree(text, two[where])
        if verdict is None:
            continue
        compared += 1
        differ += not verdict
        if args.all or not verdict:
            mark = "agree " if verdict else "DIFFER"
            print(f"{mark} {where[0][:40]} | {where[1]} | {where[2]}: {text}  vs  {two[where]}")
    print(f"{compared - differ} of {compared} measured cells agree ({differ} differ)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
