"""What every benchmark section shares: running a runner, the report, medians with spread."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "PYTHONPATH": str(REPO),
}


def run_json(
    args: Sequence[str], timeout: float = 900, python: str = sys.executable
) -> dict[str, Any]:
    """Run ``python *args*`` and return the JSON of its last stdout line."""
    done = subprocess.run(
        [python, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``median (min-max)``, or the value alone for one sample."""
    fmt = f"{{:.{digits}f}}"
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


class Report:
    def __init__(self) -> None:
        self.sections: list[str] = []
        self.data: dict[str, Any] = {}

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        self.sections.append(text)

    def note(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.sections.append(text + "\n")
