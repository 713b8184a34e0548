"""Every benchmark in one command: a table on stdout, ``results/RESULTS.md``, ``results/chart.png``.

    python -m benchmarks            # the full run (about 10 minutes on 2 cores)
    python -m benchmarks --quick    # a smoke run with tiny counts

Each runner runs in its own subprocess (clean CPU and RSS) against the local service in its own
process; comparisons run side by side in the same invocation, interleaved per repetition, and are
reported as medians with their spread (min-max) and as ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _py313, bench_sfn, bench_swf
from benchmarks._local import LocalProcess

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

RUNNERS: dict[str, list[str]] = {
    "pipeworker": ["-m", "benchmarks.pipeworker_runner", "--transport", "lean"],
    "pipeworker (aiobotocore)": [
        "-m",
        "benchmarks.pipeworker_runner",
        "--transport",
        "aiobotocore",
    ],
    **bench_swf.RUNNERS,  # "pipeworker SWF", "pipeworker SWF (aiobotocore)"
    **bench_swf.installed_peers(),  # "simpleflow", when installed
    **bench_sfn.RUNNERS,  # "pipeworker Step Functions", "... (aiobotocore)"
    **bench_sfn.installed_peers(),  # "stepfunctions-activity-worker", when installed
    "boto3 + threads": ["-m", "benchmarks.baselines.boto3_threads"],
    "aiobotocore loop": ["-m", "benchmarks.baselines.aiobotocore_loop"],
    "signed aiohttp (floor)": ["-m", "benchmarks.baselines.signed_aiohttp"],
}
ONE_GROUP = "pipeworker (one group)"
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


# -- 1 and 3b: throughput ------------------------------------------------------------------------


def throughput(
    report: Report,
    *,
    title: str,
    concurrencies: Sequence[int],
    tasks: dict[int, int],
    reps: int,
    runners: dict[str, list[str]],
    service_options: Sequence[str] = (),
    pythons: dict[str, str] | None = None,
) -> dict[int, dict[str, list[dict[str, float]]]]:
    """*pythons*: the interpreter of the runners that need another one than this, by name."""
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    for concurrency in concurrencies:
        results[concurrency] = {name: [] for name in runners}
        with LocalProcess("--poll-hold", "1", *service_options) as local:
            for rep in range(reps):
                for index, (name, command) in enumerate(runners.items()):
                    group = f"tp-{concurrency}-{rep}-{index}"
                    count = tasks[concurrency]
                    if bench_swf.is_swf(command):
                        bench_swf.add_tasks(local, group, count, command)
                    elif bench_sfn.is_sfn(command):
                        bench_sfn.add_tasks(local, group, count)
                    else:
                        local.add_tasks(group, count, group)
                    result = run_json(
                        [
                            *command,
                            *("--endpoint-url", local.url, "--worker-group", group),
                            *("--tasks", str(count), "--concurrency", str(concurrency)),
                        ],
                        python=(pythons or {}).get(name, sys.executable),
                    )
                    results[concurrency][name].append(
                        {
                            "tasks_per_s": result["tasks"] / result["seconds"],
                            "cpu_ms": result["cpu_seconds"] * 1000 / result["tasks"],
                            "duplicates": result.get("duplicates", 0),
                            # Only runners that can tell (the service's record) report these.
                            **{k: result[k] for k in ("lost", "failed") if k in result},
                        }
                    )
    rows = []
    for concurrency, by_runner in results.items():
        base = (
            by_runner.get("boto3 + threads")
            or by_runner.get("aiobotocore loop (pool 10)")
            or by_runner.get(ONE_GROUP)
        )
        floor = by_runner.get("signed aiohttp (floor)")
        for name, samples in by_runner.items():
            rate = [s["tasks_per_s"] for s in samples]
            cpu = [s["cpu_ms"] for s in samples]
            ratio = ""
            # A peer is compared with pipeworker on its own service.
            peer_of = {"SFN": bench_sfn.PEERS, "SWF": bench_swf.PEERS}
            label = next((k for k, v in peer_of.items() if runners[name] in v.values()), "")
            ours = by_runner.get(
                {"SFN": "pipeworker Step Functions", "SWF": "pipeworker SWF"}.get(label, "")
            )
            # SWF and Step Functions beside Data Pipeline on the same transport: the same
            # runner, another service.
            dp = by_runner.get(
                name.replace("pipeworker SWF", "pipeworker").replace(
                    "pipeworker Step Functions", "pipeworker"
                )
            )
            if label and ours:
                # A peer beside pipeworker on its service: tasks/s and CPU per task, as ratios.
                faster = [
                    a["tasks_per_s"] / b["tasks_per_s"] for a, b in zip(ours, samples, strict=False)
                ]
                lighter = [b["cpu_ms"] / a["cpu_ms"] for a, b in zip(ours, samples, strict=False)]
                twice = sum(s["duplicates"] for s in samples)
                lost = "".join(
                    f"{sum(s[key] for s in samples):g} {key}, "
                    for key in ("lost", "failed")
                    if all(key in s for s in samples)
                )
                ratio = (
                    f"pipeworker {label} {spread(faster, 2)}x its tasks/s, "
                    f"{spread(lighter, 2)}x less CPU/task; {lost}{twice:g} run twice"
                )
            elif (bench_swf.is_swf(runners[name]) or bench_sfn.is_sfn(runners[name])) and (
                dp and not label
            ):
                paired = [
                    a["tasks_per_s"] / b["tasks_per_s"] for a, b in zip(samples, dp, strict=False)
                ]
                ratio = f"{spread(paired, 2)}x Data Pipeline"
            elif name.startswith("pipeworker") and base and samples is not base:
                paired = [
                    a["tasks_per_s"] / b["tasks_per_s"] for a, b in zip(samples, base, strict=False)
                ]
                ratio = f"{spread(paired, 2)}x base"
                if floor:
                    share = [
                        a["tasks_per_s"] / b["tasks_per_s"]
                        for a, b in zip(samples, floor, strict=False)
                    ]
                    ratio += f"; {spread([s * 100 for s in share])}% of floor"
            rows.append(
                [
                    str(concurrency),
                    name,
                    spread(rate),
                    spread(cpu, 2),
                    ratio,
                    str(tasks[concurrency]),
                ]
            )
    report.table(
        title,
        ["concurrency", "runner", "tasks/s", "client CPU ms/task", "ratio (same run)", "tasks"],
        rows,
    )
    return results


# -- 2: scale ------------------------------------------------------------------------------------


def scale(report: Report, sizes: Sequence[int], intervals: float) -> list[dict[str, Any]]:
    rows, results = [], []
    for size in sizes:
        progress = max(0.5, size / 2000)
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
                *("--tasks", str(size), "--progress-interval", str(max(0.5, size / 2000))),
                *("--intervals", "1", "--tracemalloc", "12"),
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


# -- the chart and the command -------------------------------------------------------------------


def chart(results: dict[int, dict[str, list[dict[str, float]]]], path: Path) -> bool:
    """Draw the throughput chart; False (and no chart) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = list(results)
    names = list(next(iter(results.values())))
    figure, (rate_axis, cpu_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        xs = [c + (index - len(names) / 2) * width for c in range(len(concurrencies))]
        rates = [
            statistics.median(s["tasks_per_s"] for s in results[c][name]) for c in concurrencies
        ]
        cpus = [statistics.median(s["cpu_ms"] for s in results[c][name]) for c in concurrencies]
        rate_axis.bar(xs, rates, width, label=name)
        cpu_axis.bar(xs, cpus, width, label=name)
    for axis, label in (
        (rate_axis, "tasks/s (higher is better)"),
        (cpu_axis, "client CPU ms per task (lower is better)"),
    ):
        axis.set_xticks([c - width / 2 for c in range(len(concurrencies))])
        axis.set_xticklabels([f"concurrency {c}" for c in concurrencies])
        axis.set_ylabel(label)
    rate_axis.legend(fontsize=8)
    figure.suptitle("No-op tasks against the local service (Data Pipeline unless SWF; medians)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def throughput_runners(report: Report, smoke: bool) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The throughput table's runners, and the interpreter of those that need their own.

    The smoke run leaves the peers out: it checks the harness, and stays within its minute.
    Otherwise the Python 3.13 peers follow the other Step Functions rows, run by the cached
    venv's interpreter, or are left out with the reason noted.
    """
    peers = [*bench_sfn.PEERS.values(), *bench_swf.PEERS.values()]
    runners = {name: cmd for name, cmd in RUNNERS.items() if not (smoke and cmd in peers)}
    if smoke:
        return runners, {}
    python313, why = _py313.python()
    if python313 is None:
        names = ", ".join(bench_sfn.PY313_PEERS)
        report.note(f"No {names} row: it needs Python 3.13, and {why}.")
        return runners, {}
    last_sfn = [name for name, cmd in runners.items() if bench_sfn.is_sfn(cmd)][-1]
    ordered: dict[str, list[str]] = {}
    for name, command in runners.items():
        ordered[name] = command
        if name == last_sfn:
            ordered.update(bench_sfn.PY313_PEERS)
    return ordered, dict.fromkeys(bench_sfn.PY313_PEERS, python313)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a quick look")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts, one concurrency: proves it runs"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where RESULTS.md and chart.png go (default: benchmarks/results for a full run, "
        "which the README quotes; a temporary directory for --quick and --smoke)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=["throughput", "scale", "latency", "startup", "endurance", "ceiling"],
    )
    parser.add_argument(
        "--runners",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these throughput runners (by name, as in the table), for a focused comparison",
    )
    parser.add_argument(
        "--concurrency", nargs="+", type=int, default=None, help="only these concurrencies"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions per runner")
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="scale sizes")
    args = parser.parse_args(argv)
    smoke = args.smoke
    quick = args.quick or smoke
    if args.output is None:
        # Only a full run may replace the committed results the README quotes.
        args.output = Path(tempfile.mkdtemp(prefix="pipeworker-bench-")) if quick else RESULTS
    only = set(args.only or ["throughput", "scale", "latency", "startup", "endurance", "ceiling"])
    args.output.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.perf_counter()
    mode = "smoke" if smoke else "quick" if quick else "full"
    report.note(
        f"`python -m benchmarks{f' --{mode}' if quick else ''}` ({mode} run), "
        f"{time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores. Each runner is its own process; the local service is another."
    )
    tp: dict[int, dict[str, list[dict[str, float]]]] = {}
    if "throughput" in only:
        runners, pythons = throughput_runners(report, smoke)
        if args.runners:
            unknown = sorted(set(args.runners) - set(runners))
            if unknown:
                parser.error(f"unknown runners {unknown}; known: {sorted(runners)}")
            runners = {name: cmd for name, cmd in runners.items() if name in args.runners}
        tasks = {1: 60, 8: 200, 32: 300} if quick else {1: 1000, 8: 5000, 32: 5000}
        concurrencies = args.concurrency or ((8,) if smoke else (1, 8, 32))
        tp = throughput(
            report,
            title="Throughput: no-op tasks (poll, acknowledge, set status)",
            concurrencies=concurrencies,
            tasks={8: 50} if smoke else {c: tasks.get(c, 5000) for c in concurrencies},
            reps=args.reps or (1 if quick else 3),
            # The smoke run checks the harness, not the peers: it stays within its minute.
            runners=runners,
            pythons=pythons,
        )
        report.note(
            "SWF rows: the same pipeworker runner with `SWF(domain=...)`, against the local "
            "service's SWF subset; 2 calls per task (PollForActivityTask, "
            "RespondActivityTaskCompleted) against Data Pipeline's 3 (PollForTask, the "
            "acknowledging ReportTaskProgress, SetTaskStatus). Their ratio is to pipeworker on "
            "Data Pipeline with the same transport, in the same run. Step Functions rows: "
            "the same runner with `StepFunctions()`, one execution of a one-Task state machine "
            "per task; 2 calls per task (GetActivityTask, SendTaskSuccess). Peer rows, when "
            "installed (`.[bench]`): simpleflow's activity worker beside pipeworker SWF (one "
            "forked process per task, as it runs), and stepfunctions-activity-worker and "
            "bevault-workers (under Python 3.13, in its own venv; a forked process per unit of "
            "concurrency, each held about 1 s per task by its heartbeat thread's join, as it "
            "runs) beside pipeworker Step Functions, with lost, failed and "
            "run-twice counts where the peer's runner can tell."
        )
        if not chart(tp, args.output / "chart.png"):
            report.note("No chart: matplotlib is not installed (pip install -e '.[bench]').")
    if "throughput" in only and not args.runners:
        # An idle second worker group holds one poll (and slot) for the service's real 90 s hold.
        throughput(
            report,
            title="Two worker groups, one idle, at the real 90 s poll hold (concurrency 32)",
            concurrencies=(32,),
            tasks={32: 64 if smoke else 300 if quick else 5000},
            reps=1 if quick else 3,
            runners={
                ONE_GROUP: RUNNERS["pipeworker"],
                "pipeworker (two groups, one idle)": [
                    *RUNNERS["pipeworker"],
                    *("--idle-group", "tp-idle"),
                ],
            },
            service_options=("--poll-hold", "90"),
        )
    if "scale" in only:
        sizes = args.sizes or ((20,) if smoke else (100, 500) if quick else (100, 1000, 10_000))
        scale(report, sizes, 1.0 if quick else 3.0)
    if "latency" in only:
        pickup(report, 5 if smoke else 20 if quick else 200)
        latency_runners = {
            "pipeworker": RUNNERS["pipeworker"],
            "pipeworker (aiobotocore)": RUNNERS["pipeworker (aiobotocore)"],
            "aiobotocore loop (pool 10)": [*RUNNERS["aiobotocore loop"], "--pool", "10"],
            "aiobotocore loop": RUNNERS["aiobotocore loop"],
            "boto3 + threads": RUNNERS["boto3 + threads"],
        }
        throughput(
            report,
            title="Throughput with 20 ms added to every call (concurrency 32; ideal 533/s)",
            concurrencies=(32,),
            tasks={32: 64 if smoke else 200 if quick else 3000},
            reps=1 if quick else 2,
            runners=latency_runners,
            service_options=("--latency-ms", "20", "20"),
        )
    if "startup" in only:
        startup(report, 1 if smoke else 2 if quick else 7)
    if "endurance" in only:
        count, window = (1500, 500) if smoke else (3000, 1000) if quick else (100_000, 10_000)
        endurance(report, count, window)
    if "ceiling" in only:
        ceiling(report, 0.3 if smoke else 1.0 if quick else 3.0)
    report.note(f"Total time: {time.perf_counter() - started:.0f} s.")
    text = "# Benchmark results\n\n" + "\n".join(report.sections)
    if (args.output / "chart.png").exists():
        text += "\n![throughput chart](chart.png)\n"
    (args.output / "RESULTS.md").write_text(text)
    print(f"results: {args.output / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
