"""What every runner in the benchmark shares: its command line and its one-line JSON report."""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--worker-group", required=True)
    parser.add_argument("--tasks", type=int, required=True, help="stop after this many tasks")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--pool", type=int, help="connection pool size (default: as large as the concurrency)"
    )
    return parser.parse_args()


def cpu_seconds() -> float:
    """User plus system CPU of this process, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Counts finished tasks; the clock stops when the last one is counted, not when polls drain."""

    def __init__(self, tasks: int) -> None:
        self.tasks = tasks
        self.done = 0
        self._lock = threading.Lock()
        self.result: dict[str, float] = {}
        self.start()

    def start(self) -> None:
        """Start the clocks: call it once clients are built, right before the first poll."""
        self._wall = time.perf_counter()
        self._cpu = cpu_seconds()

    @property
    def finished(self) -> bool:
        return self.done >= self.tasks

    def count(self) -> None:
        with self._lock:
            self.done += 1
            if self.done == self.tasks:
                self.result = {
                    "tasks": self.tasks,
                    "seconds": time.perf_counter() - self._wall,
                    "cpu_seconds": cpu_seconds() - self._cpu,
                }

    def print(self) -> None:
        print(json.dumps(self.result), flush=True)
