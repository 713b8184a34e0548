"""pipeworker's SWF path beside its Data Pipeline path: tasks per second against the local service.

Starts ``python -m pipeworker.local --port 0 --poll-hold 1`` in its own process (reading the
endpoint from its first stdout line), queues the tasks first, then runs a pipeworker ``Worker`` with
a no-op handler in this process and times it from start until the last task's final status landed:

- SWF: ``PipeworkerLocal.ScheduleActivityTask`` per task; the worker makes 2 calls per task
  (PollForActivityTask, RespondActivityTaskCompleted) plus one DescribeActivityType.
- Data Pipeline: on-demand pipelines of independent activities; 3 calls per task (PollForTask,
  the acknowledging ReportTaskProgress, SetTaskStatus).

Prints a markdown table (one row per service and concurrency)::

    python benchmarks/bench_swf.py --tasks 2000 --concurrency 8 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import aiohttp

from pipeworker import SWF, DataPipeline, Outcome, Task, Worker

DOMAIN = "bench"
ACTIVITY = ("noop", "1")
PIPELINE_SIZE = 500


async def start_service() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeworker.local",
        "--port",
        "0",
        "--poll-hold",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    if not line.startswith("pipeworker.local listening on "):
        raise RuntimeError(f"unexpected first line: {line!r}")
    return process, line.rsplit(" ", 1)[-1]


class Client:
    """Unsigned JSON calls to the local service (setup only; the worker signs its own)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(self, target: str, body: dict[str, Any]) -> dict[str, Any]:
        version = (
            "1.0" if target.startswith(("SimpleWorkflowService.", "PipeworkerLocal.")) else "1.1"
        )
        headers = {"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{version}"}
        async with self.session.post(self.url, data=json.dumps(body), headers=headers) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{target}: {resp.status} {answer}")
        return answer


async def queue_swf(client: Client, task_list: str, tasks: int) -> None:
    body = {"domain": DOMAIN, "activityType": dict(zip(("name", "version"), ACTIVITY, strict=True))}
    for start in range(0, tasks, 200):
        await asyncio.gather(
            *(
                client.call(
                    "PipeworkerLocal.ScheduleActivityTask",
                    {**body, "taskList": {"name": task_list}},
                )
                for _ in range(start, min(start + 200, tasks))
            )
        )


async def queue_dp(client: Client, group: str, tasks: int) -> None:
    for start in range(0, tasks, PIPELINE_SIZE):
        count = min(PIPELINE_SIZE, tasks - start)
        objects = [
            {
                "id": "Default",
                "name": "Default",
                "fields": [
                    {"key": "scheduleType", "stringValue": "ondemand"},
                    {"key": "workerGroup", "stringValue": group},
                ],
            }
        ] + [
            {
                "id": f"A{index}",
                "name": f"A{index}",
                "fields": [{"key": "type", "stringValue": "ShellCommandActivity"}],
            }
            for index in range(count)
        ]
        tag = f"{group}-{start}"
        created = await client.call("DataPipeline.CreatePipeline", {"name": tag, "uniqueId": tag})
        pipeline_id = created["pipelineId"]
        await client.call(
            "DataPipeline.PutPipelineDefinition",
            {"pipelineId": pipeline_id, "pipelineObjects": objects},
        )
        await client.call("DataPipeline.ActivatePipeline", {"pipelineId": pipeline_id})


class CountingWorker(Worker):
    """Sets :attr:`done` when *tasks* final statuses have landed."""

    def __init__(self, tasks: int, **settings: Any) -> None:
        super().__init__(**settings)
        self.tasks = tasks
        self.finished = 0
        self.done = asyncio.Event()

    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
        self.finished += 1
        if self.finished >= self.tasks:
            self.done.set()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    url: str, client: Client, kind: str, tasks: int, concurrency: int
) -> dict[str, Any]:
    queue = f"bench-{kind}-{concurrency}"
    if kind == "swf":
        await queue_swf(client, queue, tasks)
        service: Any = SWF(domain=DOMAIN)
    else:
        await queue_dp(client, queue, tasks)
        service = DataPipeline()
    worker = CountingWorker(
        tasks,
        service=service,
        endpoint_url=url,
        region="us-east-1",
        max_concurrency=concurrency,
        shutdown_grace=5,
    )

    @worker.activity(queue)
    async def noop(task: Task) -> None:
        return None

    wall, cpu = time.perf_counter(), cpu_seconds()
    async with worker:
        await asyncio.wait_for(worker.done.wait(), 600)
        seconds, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {
        "service": "SWF" if kind == "swf" else "Data Pipeline",
        "concurrency": concurrency,
        "tasks": tasks,
        "seconds": seconds,
        "tasks_per_s": tasks / seconds,
        "cpu_ms_per_task": cpu * 1000 / tasks,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    process, url = await start_service()
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, url)
            await client.call(
                "SimpleWorkflowService.RegisterDomain",
                {"name": DOMAIN, "workflowExecutionRetentionPeriodInDays": "1"},
            )
            await client.call(
                "SimpleWorkflowService.RegisterActivityType",
                {"domain": DOMAIN, "name": ACTIVITY[0], "version": ACTIVITY[1]},
            )
            for concurrency in args.concurrency:
                for kind in ("dp", "swf"):
                    rows.append(await measure(url, client, kind, args.tasks, concurrency))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        process.terminate()
        await process.wait()
    print("| service | concurrency | tasks | seconds | tasks/s | CPU ms/task (worker) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['service']} | {row['concurrency']} | {row['tasks']} | {row['seconds']:.2f} "
            f"| {row['tasks_per_s']:.0f} | {row['cpu_ms_per_task']:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
