"""Throughput: no-op tasks through each runner, side by side against one local service."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from benchmarks import bench_sfn, bench_swf
from benchmarks._common import Report, run_json, spread
from benchmarks._local import LocalProcess

ONE_GROUP = "pipeworker (one group)"


def is_peer(command: Sequence[str]) -> bool:
    """Whether *command* runs another project's worker (a peer row)."""
    return list(command) in [*bench_sfn.PEERS.values(), *bench_swf.PEERS.values()]


PEER_TASKS_PER_SLOT = 10
"""A peer row runs at most this many tasks per unit of concurrency: the peers are slow (a forked
process per task, or a second held per task), and their rate is the same over fewer tasks."""


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
                    if is_peer(command):
                        count = min(count, PEER_TASKS_PER_SLOT * concurrency)
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
                    # Progress on stderr (the tables go to stdout): the full run is a long one.
                    print(
                        f"  [concurrency {concurrency}, run {rep + 1}/{reps}] {name}: "
                        f"{result['tasks']} tasks in {result['seconds']:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    results[concurrency][name].append(
                        {
                            "tasks": count,
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
                    str(int(samples[0]["tasks"])) if samples else "",
                ]
            )
    report.table(
        title,
        ["concurrency", "runner", "tasks/s", "client CPU ms/task", "ratio (same run)", "tasks"],
        rows,
    )
    return results
