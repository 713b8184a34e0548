"""simpleflow's SWF activity worker (PyPI ``simpleflow``, 0.36), run as its README says:
``simpleflow worker.start --domain bench --task-list <list> --nb-processes N``, here through the
function that command calls (``simpleflow.swf.process.worker.command.start``) so this process
can count. The endpoint comes from boto3's ``AWS_ENDPOINT_URL_SWF``: simpleflow has no endpoint
setting of its own.

How simpleflow works, and what the numbers include: a supervisor forks N poller processes; each
polls, then forks one process per task, which imports the activity by its SWF type name (a dotted
path, here :func:`noop`), runs it and sends RespondActivityTaskCompleted. Tasks are queued with
that type name and simpleflow's input (``{"args": [], "kwargs": {}}``); they are no-ops, as for
pipeworker. Its per-task INFO logs are off (``LOG_LEVEL=WARNING``), as pipeworker logs nothing
per task either. Heartbeats stay at its default (60 s), which a no-op never reaches.

Counting: the forked processes report through a pipe (writes under PIPE_BUF are atomic) when a
task's function starts (by activity id) and when its completion or failure answered. The clock
stops at the last completion; CPU is this process and every descendant, reaped ones included
(``psutil``: user + system + children's). The JSON line adds ``duplicates`` (activity ids run
more than once), ``failed`` (tasks it reported failed, counted as finished) and ``lost`` (tasks
the service holds neither COMPLETED nor FAILED when the run ends, read with the local service's
``DescribeActivityTasks``); a run that stalls for ``--stall-seconds`` ends with what it has.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

from benchmarks.baselines._common import Meter

DOMAIN = "bench"
SIMPLEFLOW_INPUT = json.dumps({"args": [], "kwargs": {}})


def noop() -> None:
    """The activity: nothing, as every other runner's handler."""


ACTIVITY_NAME = "benchmarks.baselines.simpleflow_worker.noop"
"""The SWF activity type name simpleflow dispatches on: the function's dotted path."""


def _tree_cpu(pid: int) -> float:
    """CPU seconds of *pid* and its live descendants, each with its reaped children."""
    import psutil  # type: ignore[import-untyped]

    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _service_statuses(endpoint: str, task_list: str) -> Counter[str]:
    """The statuses of the local service's tasks on *task_list* (its control call, unsigned)."""
    request = urllib.request.Request(
        endpoint,
        data=json.dumps({"domain": DOMAIN}).encode(),
        headers={
            "X-Amz-Target": "PipeworkerLocal.DescribeActivityTasks",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        tasks = json.load(response)["activityTasks"]
    return Counter(task["status"] for task in tasks if task["taskList"] == task_list)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--worker-group", required=True, help="the SWF task list")
    parser.add_argument("--tasks", type=int, required=True, help="stop after this many tasks")
    parser.add_argument("--concurrency", type=int, default=8, help="simpleflow's --nb-processes")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stall-seconds", type=float, default=60.0)
    args = parser.parse_args()
    # Read by boto3 when simpleflow builds its client (in each forked process).
    os.environ["AWS_ENDPOINT_URL_SWF"] = args.endpoint_url
    os.environ.setdefault("AWS_DEFAULT_REGION", args.region)
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    from simpleflow.swf.mapper.models import Domain  # type: ignore[import-untyped]
    from simpleflow.swf.process.worker import base  # type: ignore[import-untyped]
    from simpleflow.swf.process.worker.command import start  # type: ignore[import-untyped]

    reader, writer = os.pipe()

    def report(kind: str, key: Any) -> None:
        os.write(writer, f"{kind} {key}\n".encode())

    process = base.ActivityWorker.process
    complete = base.ActivityPoller.complete
    fail = base.ActivityPoller.fail

    def counted_process(self: Any, poller: Any, token: str, task: Any, *rest: Any) -> Any:
        report("run", task.activity_id)
        return process(self, poller, token, task, *rest)

    def counted_complete(self: Any, token: str, *rest: Any) -> Any:
        answer = complete(self, token, *rest)
        report("done", token)
        return answer

    def counted_fail(self: Any, token: str, *rest: Any, **options: Any) -> Any:
        answer = fail(self, token, *rest, **options)
        report("fail", token)
        return answer

    base.ActivityWorker.process = counted_process
    base.ActivityPoller.complete = counted_complete
    base.ActivityPoller.fail = counted_fail

    meter = Meter(args.tasks)
    stdout = sys.stdout

    def count() -> None:
        runs: Counter[str] = Counter()
        failed = 0
        buffer = b""
        while not meter.finished:
            ready, _, _ = select.select([reader], [], [], args.stall_seconds)
            if not ready:
                break  # stalled: report what was done, the rest counts as lost
            buffer += os.read(reader, 65536)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                kind, _, key = line.decode().partition(" ")
                if kind == "run":
                    runs[key] += 1
                elif kind == "done":
                    meter.count()
                else:
                    failed += 1
                    meter.count()  # a failed task ends too; it is reported, not waited for
        cpu = _tree_cpu(os.getpid()) - cpu_at_start
        # A stalled run reports what it finished, over the time it took, and exits 1.
        stalled = {"tasks": meter.done, "seconds": time.perf_counter() - started}
        result: dict[str, Any] = dict(meter.result) or stalled
        result["cpu_seconds"] = cpu
        result["duplicates"] = sum(n - 1 for n in runs.values() if n > 1)
        result["failed"] = failed
        statuses = _service_statuses(args.endpoint_url, args.worker_group)
        result["lost"] = sum(
            n for status, n in statuses.items() if status not in ("COMPLETED", "FAILED")
        )
        stdout.write(json.dumps(result) + "\n")
        stdout.flush()
        import psutil

        # Its supervisor and pollers run until signalled; end them here, by their pids.
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(0 if meter.result else 1)

    # Build its boto3 client before the clocks start, as the other runners do: simpleflow caches
    # it per process (and its pollers inherit it through fork), so start() reuses this one.
    Domain(DOMAIN)
    cpu_at_start = _tree_cpu(os.getpid())
    started = time.perf_counter()
    meter.start()
    threading.Thread(target=count, daemon=True).start()
    # The README's `simpleflow worker.start`: blocks in its supervisor loop (main thread: signals).
    start(DOMAIN, args.worker_group, nb_processes=args.concurrency)


if __name__ == "__main__":
    main()
