"""Every benchmark in one command: a table on stdout, ``results/RESULTS.md``, ``results/chart.png``.

    python -m benchmarks            # the full run (about 27 minutes on 2 cores)
    python -m benchmarks --quick    # a smoke run with tiny counts

Each runner runs in its own subprocess (clean CPU and RSS) against the local service in its own
process; comparisons run side by side in the same invocation, interleaved per repetition, and are
reported as medians with their spread (min-max) and as ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import _py313, bench_sfn, bench_swf
from benchmarks._common import Report
from benchmarks._sections import ceiling, endurance, pickup, profile, scale, startup
from benchmarks._throughput import ONE_GROUP, throughput

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


def machine() -> str:
    """The CPU model, cores and memory, and how fast one core runs a fixed Python loop: figures
    from machines of different speeds compare through that calibration (or through ratios)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (OSError, ValueError):
        memory = ""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - began)
    return (
        f"{model}, {os.cpu_count()} cores{memory}; calibration: one core sums a million squares "
        f"in {best * 1000:.0f} ms (best of 5)"
    )


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
        choices=["throughput", "profile", "scale", "latency", "startup", "endurance", "ceiling"],
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
    sections = ["throughput", "profile", "scale", "latency", "startup", "endurance", "ceiling"]
    only = set(args.only or sections)
    args.output.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.perf_counter()
    mode = "smoke" if smoke else "quick" if quick else "full"
    report.note(
        f"`python -m benchmarks{f' --{mode}' if quick else ''}` ({mode} run), "
        f"{time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
        f"{machine()}. Each runner is its own process; the local service is another."
    )
    tp: dict[int, dict[str, list[dict[str, float]]]] = {}
    if "throughput" in only:
        runners, pythons = throughput_runners(report, smoke)
        if args.runners:
            unknown = sorted(set(args.runners) - set(runners))
            if unknown:
                parser.error(f"unknown runners {unknown}; known: {sorted(runners)}")
            runners = {name: cmd for name, cmd in runners.items() if name in args.runners}
        tasks = {1: 60, 8: 200, 32: 300} if quick else {1: 500, 8: 2500, 32: 2500}
        concurrencies = args.concurrency or ((8,) if smoke else (1, 8, 32))
        tp = throughput(
            report,
            title="Throughput: no-op tasks (poll, acknowledge, set status)",
            concurrencies=concurrencies,
            tasks={8: 50} if smoke else {c: tasks.get(c, 2500) for c in concurrencies},
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
            tasks={32: 64 if smoke else 300 if quick else 2500},
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
    if "profile" in only:
        cpu = [s["cpu_ms"] for s in tp.get(32, {}).get("pipeworker", [])]
        profile(report, 300 if quick else 2500, statistics.median(cpu) if cpu else None)
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
            tasks={32: 64 if smoke else 200 if quick else 1500},
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
