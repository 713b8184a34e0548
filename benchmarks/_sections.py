"""The other sections: scale (tasks in flight), pickup latency, start-up, endurance, and the
local service's own ceiling."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks._common import ENV, REPO, Report, run_json, spread
from benchmarks._local import LocalProcess

# -- 2: scale ------------------------------------------------------------------------------------


def _progress_interval(size: int) -> float:
    # About 1,000 progress reports a second however many tasks are in flight: what the local
    # service answers on a busy 2-core machine beside the runner (the production cadence is
    # 60 s; the lease is 300 s).
    return max(0.5, size / 1000)


def scale(report: Report, sizes: Sequence[int], intervals: float) -> list[dict[str, Any]]:
    rows, results = [], []
    for size in sizes:
        progress = _progress_interval(size)
        with LocalProcess("--poll-hold", "1") as local:
            result = run_json(
                [
                    *("-m", "benchmarks.pipeworker_runner", "--mode", "scale"),
                    *("--endpoint-url", local.url, "--worker-group", f"scale-{size}"),
                    *("--tasks", str(size), "--progress-interval", str(progress)),
                    *("--intervals", str(intervals)),
                ]
            )
        results.append(result)
        per = result["calls_per_task"]
        rows.append(
            [
                f"{size:,}",
                f"{progress:g}",
                f"{result['rss_per_task'] / 1024:.2f}",
                f"{result['cpu_ms_per_report']:.3f}",
                f"{result['reports_per_task_interval']:.2f}",
                f"{per['PollForTask']:.2f} / {per['ReportTaskProgress']:.2f} / "
                f"{per['SetTaskStatus']:.2f}",
                f"{result['ramp_seconds']:.1f}",
                str(result["payload_bytes"]),
            ]
        )
    # Where an in-flight task's bytes go: a separate run with tracemalloc on (it costs memory
    # itself, so the RSS figures above come from runs without it).
    size = sizes[-1]
    with LocalProcess("--poll-hold", "1") as local:
        traced = run_json(
            [
                *("-m", "benchmarks.pipeworker_runner", "--mode", "scale"),
                *("--endpoint-url", local.url, "--worker-group", f"trace-{size}"),
                # Tracing slows every allocation several times: a cadence six times longer (the
                # production 60 s at 10,000 in flight) keeps the traced runner ahead of its reports.
                *("--tasks", str(size), "--progress-interval", str(6 * _progress_interval(size))),
                *("--intervals", "1", "--tracemalloc", "20"),
            ]
        )
    memory_rows = [
        [item["where"], f"{item['bytes_per_task']:.0f}", f"{item['blocks_per_task']:.2f}"]
        for item in traced["tracemalloc"]
    ]
    report.table(
        "Scale: tasks in flight (sleeping handlers)",
        [
            "in flight",
            "progress interval s",
            "RSS KiB/task",
            "CPU ms/report",
            "reports per task per interval",
            "calls per task: poll / progress / status",
            "ramp s",
            "payload bytes",
        ],
        rows,
    )
    report.table(
        f"Where an in-flight task's memory goes ({size:,} in flight, tracemalloc, largest sites)",
        ["allocated at", "bytes per task", "blocks per task"],
        memory_rows,
    )
    report.note(
        "RSS per task: (RSS with every task in flight - RSS idle after a 200-task warm-up) "
        "/ tasks. "
        "Progress calls per task = 1 acknowledgement + one report per interval held (the handlers "
        "sleep for the ramp, 1.2 intervals and the measured intervals); payload bytes is the "
        "JSON size of the task's objects as received."
    )
    return results


# -- 3: latency ----------------------------------------------------------------------------------


def pickup(report: Report, samples: int) -> dict[str, float]:
    with LocalProcess("--poll-hold", "20") as local:
        result = run_json(
            [
                *("-m", "benchmarks.pipeworker_runner", "--mode", "pickup"),
                *("--endpoint-url", local.url, "--worker-group", "pickup"),
                *("--tasks", str(samples), "--concurrency", "8"),
            ]
        )
    values = sorted(result["samples_ms"])
    p50 = statistics.median(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    report.table(
        "Pickup latency: ActivatePipeline sent -> handler started (idle polls waiting)",
        ["samples", "p50 ms", "p99 ms", "min ms", "max ms"],
        [[str(len(values)), f"{p50:.2f}", f"{p99:.2f}", f"{values[0]:.2f}", f"{values[-1]:.2f}"]],
    )
    return {"p50_ms": p50, "p99_ms": p99}


# -- 4: start-up ---------------------------------------------------------------------------------


def startup(report: Report, runs: int) -> dict[str, float]:
    from benchmarks import startup as bench

    python = sys.executable
    helps = bench._repeat(
        runs, lambda: bench._time([python, "-m", "pipeworker", "--help"], cwd=REPO, env=ENV)
    )
    polls = bench._first_poll(python, runs, ENV)
    report.table(
        "Start-up",
        ["measure", "median ms (min-max)", "runs"],
        [
            ["python -m pipeworker --help", spread([h * 1000 for h in helps]), str(runs)],
            ["process start -> first PollForTask", spread([p * 1000 for p in polls]), str(runs)],
        ],
    )
    return {
        "help_ms": statistics.median(helps) * 1000,
        "first_poll_ms": statistics.median(polls) * 1000,
    }


# -- 5: endurance --------------------------------------------------------------------------------


def endurance(report: Report, tasks: int, window: int) -> dict[str, Any]:
    with LocalProcess("--poll-hold", "1") as local:
        local.add_tasks("endurance", tasks, "endurance")
        result = run_json(
            [
                *("-m", "benchmarks.pipeworker_runner", "--mode", "endurance"),
                *("--endpoint-url", local.url, "--worker-group", "endurance"),
                *("--tasks", str(tasks), "--concurrency", "32", "--window", str(window)),
            ]
        )
    growth = result["rss_end"] / result["rss_first_1000"] - 1
    windows = result["windows"]
    report.table(
        f"Endurance: {tasks:,} no-op tasks through one process (concurrency 32)",
        [
            "tasks/s per window",
            "first / last window",
            "RSS after 1,000",
            "RSS at the end",
            "growth",
        ],
        [
            [
                " ".join(map(str, windows)),
                f"{windows[0]} / {windows[-1]}" if windows else "",
                f"{result['rss_first_1000'] / 2**20:.1f} MiB",
                f"{result['rss_end'] / 2**20:.1f} MiB",
                f"{growth * 100:+.1f}%",
            ]
        ],
    )
    return {**result, "growth": growth}


# -- where one task's CPU goes -------------------------------------------------------------------


def profile(report: Report, tasks: int, cpu_ms: float | None) -> dict[str, float]:
    """pipeworker at concurrency 32 under cProfile: each part of the stack's share of its CPU.

    *cpu_ms*: the unprofiled CPU per task from the throughput section of the same run, if it ran;
    each share of it is given in milliseconds (cProfile itself slows every call, so its own
    figures are not quoted).
    """
    with LocalProcess("--poll-hold", "1") as local:
        local.add_tasks("profile", tasks, "profile")
        result = run_json(
            [
                *("-m", "benchmarks.pipeworker_runner", "--profile"),
                *("--endpoint-url", local.url, "--worker-group", "profile"),
                *("--tasks", str(tasks), "--concurrency", "32"),
            ]
        )
    shares: dict[str, float] = result["profile"]
    report.table(
        f"Where a no-op task's CPU goes (cProfile, {tasks:,} tasks, concurrency 32)",
        ["part of the stack", "share of the CPU", "ms per task (of the unprofiled median)"],
        [
            [part, f"{share * 100:.1f}%", f"{share * cpu_ms:.2f}" if cpu_ms else ""]
            for part, share in shares.items()
        ],
    )
    report.note(
        "Own time of every function, grouped by where it lives. Built-ins go by their names "
        "(socket calls and epoll count as asyncio, hmac and hashlib as signing), or with their "
        "callers when the name says nothing (isinstance, len). pipeworker is the runner's own "
        "code: supervisor, scope, leases, wire translation, the runner's hooks."
    )
    return shares


# -- the local service's own ceiling -------------------------------------------------------------


def ceiling(report: Report, seconds: float) -> dict[str, Any]:
    import asyncio

    import aiohttp

    from benchmarks import service_ceiling as bench

    async def measure() -> list[dict[str, Any]]:
        process, url = await bench.start_service()
        try:
            connector = aiohttp.TCPConnector(limit=16)
            async with aiohttp.ClientSession(connector=connector) as session:
                client = bench.Client(session, url)
                return [
                    await bench.cycle(client, seconds, 16, 1000),
                    await bench.mixed(client, seconds, 16),
                ]
        finally:
            if process is not None:
                process.terminate()
                await process.wait()

    results = asyncio.run(measure())
    report.table(
        "The local service's own ceiling (raw aiohttp client, 16 connections)",
        ["workload", "calls/s"],
        [[r["workload"], f"{r['calls_per_second']:,}"] for r in results],
    )
    return {r["workload"]: r["calls_per_second"] for r in results}
