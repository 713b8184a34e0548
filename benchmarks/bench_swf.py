"""pipeworker's SWF path beside its Data Pipeline path: tasks per second against the local service.

``python -m benchmarks`` runs it as rows of its throughput table (``pipeworker SWF`` on both
transports, beside ``pipeworker`` on Data Pipeline, same concurrency); this module holds what
those rows need: the runner commands (:data:`RUNNERS`, ``benchmarks.pipeworker_runner --service
swf`` in its own process) and :func:`add_tasks`, which queues SWF activity tasks on the local
service in its own process through its unsigned control call
(``PipeworkerLocal.ScheduleActivityTask``).

Calls per no-op task: SWF 2 (PollForActivityTask, RespondActivityTaskCompleted; plus one
DescribeActivityType per activity type and worker), Data Pipeline 3 (PollForTask, the
acknowledging ReportTaskProgress, SetTaskStatus).

Peers (:data:`PEERS`, rows when installed, ``pip install -e .[bench]``): ``simpleflow``'s
activity worker, as its README runs it (``benchmarks.baselines.simpleflow_worker``). Its tasks are
the same no-ops under the type name and input simpleflow dispatches on (:func:`add_tasks`).

Alone, it prints the throughput table with only the pipeworker rows::

    python -m benchmarks.bench_swf --tasks 2000 --concurrency 8 32
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from benchmarks._local import LocalProcess
from benchmarks.baselines import simpleflow_worker

DOMAIN = "bench"
ACTIVITY = ("noop", "1")
_PIPEWORKER = ["-m", "benchmarks.pipeworker_runner"]
RUNNERS: dict[str, list[str]] = {
    f"pipeworker SWF{label}": [*_PIPEWORKER, "--service", "swf", "--transport", transport]
    for label, transport in (("", "lean"), (" (aiobotocore)", "aiobotocore"))
}
"""The SWF rows of the throughput table, by name: the same runner as Data Pipeline's."""
PEERS: dict[str, list[str]] = {
    "simpleflow": ["-m", "benchmarks.baselines.simpleflow_worker"],
}
"""SWF activity workers a user would pick instead, by name; each prints the same JSON line."""


def installed_peers() -> dict[str, list[str]]:
    """The :data:`PEERS` whose package is installed."""
    return dict(PEERS) if importlib.util.find_spec("simpleflow") is not None else {}


def is_swf(command: Sequence[str]) -> bool:
    """Whether a runner command runs SWF tasks (so :func:`add_tasks` queues them)."""
    if list(command) in PEERS.values():
        return True
    return "--service" in command and command[list(command).index("--service") + 1] == "swf"


async def _call(session: aiohttp.ClientSession, url: str, target: str, body: Any) -> Any:
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"}
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        answer = await response.json(content_type=None)
        if response.status != 200 and "AlreadyExists" not in str(answer.get("__type")):
            raise RuntimeError(f"{target}: {response.status} {answer}")
    return answer


async def _queue(url: str, task_list: str, count: int, simpleflow: bool) -> None:
    name = simpleflow_worker.ACTIVITY_NAME if simpleflow else ACTIVITY[0]
    kind = {"name": name, "version": ACTIVITY[1]}
    async with aiohttp.ClientSession() as session:
        await _call(
            session,
            url,
            "SimpleWorkflowService.RegisterDomain",
            {"name": DOMAIN, "workflowExecutionRetentionPeriodInDays": "1"},
        )
        await _call(
            session,
            url,
            "SimpleWorkflowService.RegisterActivityType",
            {"domain": DOMAIN, **kind},
        )
        body: dict[str, Any] = {
            "domain": DOMAIN,
            "activityType": kind,
            "taskList": {"name": task_list},
        }
        if simpleflow:
            body["input"] = simpleflow_worker.SIMPLEFLOW_INPUT
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    _call(session, url, "PipeworkerLocal.ScheduleActivityTask", body)
                    for _ in range(start, min(start + 200, count))
                )
            )


def add_tasks(local: LocalProcess, task_list: str, count: int, command: Sequence[str] = ()) -> None:
    """Queue *count* no-op activity tasks on *task_list* (registering the domain and type) for
    the runner *command*: simpleflow's tasks carry the type name and input it dispatches on."""
    simpleflow = list(command) == PEERS["simpleflow"]
    asyncio.run(_queue(local.url, task_list, count, simpleflow))


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    run.throughput(
        run.Report(),
        title="Throughput: no-op tasks, SWF beside Data Pipeline",
        concurrencies=args.concurrency,
        tasks=dict.fromkeys(args.concurrency, args.tasks),
        reps=args.reps,
        runners={
            name: command for name, command in run.RUNNERS.items() if name.startswith("pipeworker")
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
