"""pipeworker as a benchmark runner: one JSON line on stdout, like the baselines.

``--service datapipeline`` (default) or ``--service swf`` (``--worker-group`` is then the task
list, in the domain of :mod:`benchmarks.bench_swf`; throughput and endurance modes only), each on
``--transport lean`` or ``aiobotocore``.

Modes (``--mode``):

- ``throughput``: no-op handlers; counts a task when its final status has landed; prints
  ``{"tasks", "seconds", "cpu_seconds"}`` (the clock starts once the clients are built). With
  ``--profile``, the measured part runs under cProfile and ``"profile"`` gives the share of the
  loop thread's CPU spent in each part of the stack (aiohttp, asyncio and sockets, signing, ...).
- ``endurance``: the same, plus throughput per window of ``--window`` tasks and the RSS after the
  first 1,000 tasks and after the last.
- ``scale``: ``--tasks`` handlers that sleep until all are in flight and a few progress
  intervals have passed; RSS per in-flight task, CPU per progress report, calls per task.
- ``pickup``: ``--tasks`` one-activity pipelines, one after the other, with idle polls waiting:
  from the ActivatePipeline call to the handler starting, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import os
import resource
import time
from typing import Any

from benchmarks._local import LocalProcess, add_pipeline
from pipeworker import SWF, BaseTask, DataPipeline, Outcome, StepFunctions, Task, Worker


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def wait_until(check: Any) -> None:
    """Wait until *check()* is true, looking every 50 ms."""
    while True:
        if check():
            return
        await asyncio.sleep(0.05)


class _Control(LocalProcess):
    """The service the harness started, reached by URL for control calls only."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


class Runner(Worker):
    """A worker that counts the tasks whose final status landed."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.finished = 0
        self.started = asyncio.Event()
        self.on_count: Any = None

    async def on_startup(self) -> None:
        self.started.set()  # the clients are built: the clock starts

    async def on_task_end(self, task: BaseTask, outcome: Outcome | None) -> None:
        self.finished += 1
        if self.on_count is not None:
            self.on_count(self.finished)


def make_runner(args: argparse.Namespace, concurrency: int, progress: float = 60.0) -> Runner:
    service: DataPipeline | SWF | StepFunctions
    if args.service == "stepfunctions":
        service = StepFunctions(transport=args.transport)
    elif args.service == "swf":
        from benchmarks.bench_swf import DOMAIN

        service = SWF(domain=DOMAIN, transport=args.transport)
    else:
        service = DataPipeline(transport=args.transport)
    return Runner(
        service=service,
        region="us-east-1",
        endpoint_url=args.endpoint_url,
        max_concurrency=concurrency,
        progress_interval=progress,
        shutdown_grace=0,
    )


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    runner = make_runner(args, args.concurrency)
    done = asyncio.Event()
    marks: list[tuple[int, float, float, int]] = []  # (tasks, time, cpu, rss)

    def counted(finished: int) -> None:
        if args.mode == "endurance" and (finished == 1000 or finished % args.window == 0):
            marks.append((finished, time.perf_counter(), cpu_seconds(), rss_bytes()))
        if finished >= args.tasks:
            done.set()

    runner.on_count = counted

    queue = args.worker_group
    if args.service == "stepfunctions":
        from benchmarks.bench_sfn import activity_arn

        queue = activity_arn(queue)

    @runner.activity(queue)
    async def noop(task: BaseTask) -> None:
        pass

    if args.idle_group:
        runner.activity(args.idle_group)(noop)  # a second worker group that never has work

    serving = asyncio.create_task(runner.serve())
    await runner.started.wait()
    profile = cProfile.Profile() if args.profile else None
    if profile is not None:
        profile.enable()
    wall, cpu = time.perf_counter(), cpu_seconds()
    await done.wait()
    result: dict[str, Any] = {
        "tasks": args.tasks,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": cpu_seconds() - cpu,
    }
    if profile is not None:
        profile.disable()
        result["profile"] = where_cpu_goes(profile)
    if args.mode == "endurance":
        gc.collect()
        windows, last = [], (0, wall, cpu, 0)
        for mark in marks:
            if mark[0] % args.window == 0:
                windows.append(round((mark[0] - last[0]) / (mark[1] - last[1])))
                last = mark
        first = next(mark[3] for mark in marks if mark[0] == 1000)
        result |= {"windows": windows, "rss_first_1000": first, "rss_end": rss_bytes()}
    serving.cancel()
    return result


# Where a profiled function's own time goes: the first marker found in its file name (or, for
# a built-in, in its name) names its part of the stack.
_PARTS = (
    ("_sigv4", "signing (SigV4)"),
    ("hmac", "signing (SigV4)"),
    ("hashlib", "signing (SigV4)"),
    ("aiohttp", "aiohttp"),
    ("yarl", "aiohttp"),
    ("multidict", "aiohttp"),
    ("json", "JSON"),
    ("asyncio", "asyncio and sockets"),
    ("selector", "asyncio and sockets"),
    ("socket", "asyncio and sockets"),
    ("select.", "asyncio and sockets"),
    ("tenacity", "tenacity (retries)"),
    ("logging", "logging"),
    ("pipeworker", "pipeworker"),
    ("benchmarks", "pipeworker"),
)


def where_cpu_goes(profile: cProfile.Profile) -> dict[str, float]:
    """Each part of the stack's share of the profiled thread's own time, largest first."""
    import pstats

    def part_of(filename: str, name: str) -> str | None:
        text = name if filename == "~" else filename
        return next((part for marker, part in _PARTS if marker in text), None)

    parts: collections.Counter[str] = collections.Counter()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, own, _, callers) in stats.items():
        part = part_of(filename, name)
        if part is not None:
            parts[part] += own
            continue
        # A generic built-in (isinstance, len, dict.get...): its time goes to its callers' parts.
        for (caller_file, _, caller_name), (_, _, caller_own, _) in callers.items():
            parts[part_of(caller_file, caller_name) or "other"] += caller_own
    total = sum(parts.values()) or 1.0
    return {part: own / total for part, own in parts.most_common()}


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    control = _Control(args.endpoint_url)
    progress = args.progress_interval
    runner = make_runner(args, args.tasks, progress)
    release = asyncio.Event()
    measuring = False
    running = 0
    payload: list[int] = []

    @runner.activity(args.worker_group)
    async def sleeper(task: Task) -> None:
        nonlocal running
        if not measuring:
            return  # warm-up
        if not payload:
            payload.append(len(json.dumps({k: str(v) for k, v in task._received.objects.items()})))
        running += 1
        await release.wait()

    serving = asyncio.create_task(runner.serve())
    await runner.started.wait()
    warm = 200
    await asyncio.to_thread(add_pipeline, control, args.worker_group, warm, "warm")
    await wait_until(lambda: not (runner.finished < warm))
    await asyncio.sleep(0.5)
    gc.collect()
    rss_before = rss_bytes()
    calls_before = await asyncio.to_thread(control.calls)
    traced = None
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
        traced = tracemalloc.take_snapshot()
    measuring = True
    started = time.perf_counter()
    await asyncio.to_thread(control.add_tasks, args.worker_group, args.tasks, "scale")
    await wait_until(lambda: not (running < args.tasks))
    ramp = time.perf_counter() - started
    await asyncio.sleep(progress * 1.2)  # every task has acknowledged and reported once
    gc.collect()
    rss_full = rss_bytes()
    where: list[dict[str, Any]] = []
    if traced is not None:
        import tracemalloc

        grown = tracemalloc.take_snapshot().compare_to(traced, "lineno")
        tracemalloc.stop()
        where.append(
            {
                "where": "all sites",
                "bytes_per_task": sum(stat.size_diff for stat in grown) / args.tasks,
                "blocks_per_task": sum(stat.count_diff for stat in grown) / args.tasks,
            }
        )
        for stat in sorted(grown, key=lambda stat: -stat.size_diff)[: args.tracemalloc]:
            frame = stat.traceback[0]
            where.append(
                {
                    "where": f"{_short_path(frame.filename)}:{frame.lineno}",
                    "bytes_per_task": stat.size_diff / args.tasks,
                    "blocks_per_task": stat.count_diff / args.tasks,
                }
            )
    reports_a = (await asyncio.to_thread(control.calls)).get("ReportTaskProgress", 0)
    cpu_a, wall_a = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(progress * args.intervals)
    reports_b = (await asyncio.to_thread(control.calls)).get("ReportTaskProgress", 0)
    cpu_b, wall_b = cpu_seconds(), time.perf_counter()
    release.set()
    await wait_until(lambda: not (runner.finished < warm + args.tasks))
    calls_after = await asyncio.to_thread(control.calls)
    serving.cancel()
    delta = {
        op: calls_after.get(op, 0) - calls_before.get(op, 0)
        for op in ("PollForTask", "ReportTaskProgress", "SetTaskStatus")
    }
    reports = reports_b - reports_a
    intervals = (wall_b - wall_a) / progress
    return {
        "in_flight": args.tasks,
        "progress_interval": progress,
        "ramp_seconds": ramp,
        "rss_per_task": (rss_full - rss_before) / args.tasks,
        "cpu_ms_per_report": (cpu_b - cpu_a) * 1000 / max(reports, 1),
        "reports_per_task_interval": reports / args.tasks / intervals,
        "calls": delta,
        "calls_per_task": {op: count / args.tasks for op, count in delta.items()},
        "payload_bytes": payload[0] if payload else 0,
        "tracemalloc": where,
    }


async def pickup(args: argparse.Namespace) -> dict[str, Any]:
    control = _Control(args.endpoint_url)
    runner = make_runner(args, args.concurrency)
    begun: asyncio.Future[float] | None = None

    @runner.activity(args.worker_group)
    async def mark(task: Task) -> None:
        if begun is not None and not begun.done():
            begun.set_result(time.perf_counter())

    serving = asyncio.create_task(runner.serve())
    await runner.started.wait()
    await asyncio.sleep(0.3)  # polls are out and held
    loop = asyncio.get_running_loop()
    samples = []
    for index in range(args.tasks):
        pipeline_id = await asyncio.to_thread(
            add_pipeline, control, args.worker_group, 1, f"pickup-{index}", activate=False
        )
        begun = loop.create_future()
        sent = time.perf_counter()
        await asyncio.to_thread(control.call, "ActivatePipeline", {"pipelineId": pipeline_id})
        samples.append((await begun - sent) * 1000)
        await asyncio.sleep(0.01)  # the status lands, polls are out again
    serving.cancel()
    return {"samples_ms": samples}


def _short_path(filename: str) -> str:
    """*filename* from the package it is in (this repository's files from its root)."""
    from benchmarks._common import REPO

    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if filename.startswith(f"{REPO}/"):
        return filename[len(f"{REPO}/") :]
    if "/lib/python" in filename:
        return filename.split("/lib/python", 1)[1]
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--worker-group", required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--transport", default="lean", choices=["lean", "aiobotocore"])
    parser.add_argument(
        "--service", default="datapipeline", choices=["datapipeline", "swf", "stepfunctions"]
    )
    parser.add_argument(
        "--mode", default="throughput", choices=["throughput", "endurance", "scale", "pickup"]
    )
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--idle-group", help="also poll this worker group, which has no work")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, help="scale: report the N largest allocation sites"
    )
    parser.add_argument(
        "--profile", action="store_true", help="throughput: where the CPU goes (cProfile)"
    )
    parser.add_argument("--progress-interval", type=float, default=1.0)
    parser.add_argument("--intervals", type=float, default=3.0)
    args = parser.parse_args()
    if args.service != "datapipeline" and args.mode not in ("throughput", "endurance"):
        parser.error(f"--mode {args.mode} drives Data Pipeline only")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    run = {"throughput": throughput, "endurance": throughput, "scale": scale, "pickup": pickup}
    result = asyncio.run(run[args.mode](args))
    print(json.dumps(result), flush=True)
    os._exit(0)  # do not wait for held polls


if __name__ == "__main__":
    main()
