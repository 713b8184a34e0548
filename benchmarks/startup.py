"""Start-up time of the command line: ``--help``, and process start to the first PollForTask.

    python benchmarks/startup.py [--runs 9]

Prints a small table of medians (and the fastest run). Rows:

- ``python -c pass``: the interpreter alone, the floor.
- ``import pipeworker.cli``: what ``--help`` must import.
- ``python -m pipeworker --help``: the command as shipped.
- ``--help, lazy __init__``: the same with ``pipeworker/__init__.py`` replaced by a lazy one
  (PEP 562 ``__getattr__``) in a temporary copy of the package: what lazy public names would
  give. The eager ``__init__`` imports the Worker, and so aiobotocore, before the CLI runs.
- ``start to first PollForTask``: from ``Popen`` of ``python -m pipeworker app:worker
  --endpoint-url ...`` to the local service counting the worker's first PollForTask.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAZY_INIT = '''"""pipeworker (benchmark copy): public names imported on first use."""

import importlib

_WHERE = {
    "DataPipeline": "pipeworker.services.datapipeline",
    "Outcome": "pipeworker.services.base",
    "Ref": "pipeworker.services._dptask",
    "Task": "pipeworker.services._dptask",
    "Worker": "pipeworker.worker",
}


def __getattr__(name):
    module = _WHERE.get(name, "pipeworker.exceptions")
    try:
        value = getattr(importlib.import_module(module), name)
    except AttributeError:
        raise AttributeError(f"module 'pipeworker' has no attribute {name!r}") from None
    globals()[name] = value
    return value
'''

APP = """
from pipeworker import Worker
worker = Worker(region="us-east-1")

@worker.activity("startup-bench")
async def handle(task):
    pass
"""


def _time(command: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    measure()  # warm the file cache and the bytecode
    return [measure() for _ in range(runs)]


def _first_poll(python: str, runs: int, env: dict[str, str]) -> list[float]:
    from pipeworker.local import LocalConfig
    from pipeworker.testing import serve_in_thread

    samples: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "bench_app.py").write_text(APP)
        with serve_in_thread(LocalConfig(poll_hold=0.2)) as local:

            def polls() -> int:
                calls = local.call_soon(lambda: local.service.stats()["calls"])
                return int(calls.get("PollForTask", 0))

            for _ in range(runs + 1):
                before = polls()
                start = time.perf_counter()
                process = subprocess.Popen(
                    [
                        *(python, "-m", "pipeworker", "bench_app:worker"),
                        *("--endpoint-url", local.endpoint_url, "--log-level", "warning"),
                    ],
                    cwd=directory,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    while polls() == before:
                        if process.poll() is not None:
                            raise RuntimeError("the worker exited before polling")
                        time.sleep(0.002)
                    samples.append(time.perf_counter() - start)
                finally:
                    process.terminate()
                    process.wait(10)
    return samples[1:]


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    python = sys.executable
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(REPO),
    }
    rows: list[tuple[str, list[float]]] = []

    def timed(name: str, command: list[str], cwd: Path = REPO, **extra: str) -> None:
        rows.append((name, _repeat(runs, lambda: _time(command, cwd=cwd, env={**env, **extra}))))

    timed("python -c pass", [python, "-c", "pass"])
    timed("import pipeworker.cli", [python, "-c", "import pipeworker.cli"])
    timed("python -m pipeworker --help", [python, "-m", "pipeworker", "--help"])
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory, "pipeworker")
        shutil.copytree(REPO / "pipeworker", copy, ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "__init__.py").write_text(LAZY_INIT)
        timed(
            "--help, lazy __init__",
            [python, "-m", "pipeworker", "--help"],
            cwd=Path(directory),
            PYTHONPATH=directory,
        )
    rows.append(("start to first PollForTask", _first_poll(python, runs, env)))

    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  median ms  best ms   (runs: {runs})")
    for name, samples in rows:
        print(
            f"{name:{width}}  {statistics.median(samples) * 1000:9.0f}  {min(samples) * 1000:7.0f}"
        )


if __name__ == "__main__":
    main()
