"""The local service's own ceiling: task-runner calls per second it answers.

Starts ``python -m pipeworker.local --port 0`` in its own process (reading the endpoint from its
first stdout line) and drives it from this process with a raw aiohttp client over several
concurrent keep-alive connections, so neither botocore nor signing is measured. Two workloads:

- ``cycle``: real task traffic. Pipelines of independent activities on one worker group; each
  connection loops PollForTask -> ReportTaskProgress -> SetTaskStatus FINISHED.
- ``mixed``: steady-state runner traffic on leased tasks: ReportTaskProgress, heartbeats and
  empty polls (the service runs with ``--poll-hold 0`` so an empty poll answers at once).

Each runs twice: with state in memory (the default) and with ``--state FILE`` (every answered call
saved to SQLite first). Prints one JSON line per workload and state: calls, seconds, calls per
second.

    python benchmarks/service_ceiling.py --seconds 5 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

import aiohttp

CONTENT_TYPE = "application/x-amz-json-1.1"


class Client:
    """Unsigned JSON 1.1 calls over one shared session."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.calls = 0

    async def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-Amz-Target": f"DataPipeline.{operation}", "Content-Type": CONTENT_TYPE}
        async with self.session.post(self.url, data=json.dumps(body), headers=headers) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{operation}: {resp.status} {answer}")
        self.calls += 1
        return answer


async def start_service(state: str | None = None) -> tuple[asyncio.subprocess.Process | None, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeworker.local",
        "--port",
        "0",
        "--poll-hold",
        "0",
        *(("--state", state) if state else ()),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    if not line.startswith("pipeworker.local listening on "):
        raise RuntimeError(f"unexpected first line: {line!r}")
    return process, line.rsplit(" ", 1)[-1]


async def add_pipeline(client: Client, group: str, activities: int, tag: str) -> None:
    objects = [
        {
            "id": "Default",
            "name": "Default",
            "fields": [
                {"key": "scheduleType", "stringValue": "ondemand"},
                {"key": "workerGroup", "stringValue": group},
            ],
        }
    ]
    objects += [
        {
            "id": f"A{index}",
            "name": f"A{index}",
            "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "command", "stringValue": f"echo {index}"},
            ],
        }
        for index in range(activities)
    ]
    created = await client.call("CreatePipeline", {"name": tag, "uniqueId": tag})
    pipeline_id = created["pipelineId"]
    await client.call(
        "PutPipelineDefinition", {"pipelineId": pipeline_id, "pipelineObjects": objects}
    )
    await client.call("ActivatePipeline", {"pipelineId": pipeline_id})


async def cycle(client: Client, seconds: float, connections: int, batch: int) -> dict[str, Any]:
    """Poll, acknowledge, finish: as many tasks as the service hands out."""
    pipelines = 0
    for _ in range(4):
        await add_pipeline(client, "bench-cycle", batch, f"cycle-{pipelines}")
        pipelines += 1
    deadline = time.perf_counter() + seconds
    refill = asyncio.Lock()

    async def worker() -> int:
        nonlocal pipelines
        done = 0
        while time.perf_counter() < deadline:
            polled = await client.call("PollForTask", {"workerGroup": "bench-cycle"})
            task = polled.get("taskObject")
            if task is None:
                async with refill:
                    await add_pipeline(client, "bench-cycle", batch, f"cycle-{pipelines}")
                    pipelines += 1
                continue
            await client.call("ReportTaskProgress", {"taskId": task["taskId"]})
            await client.call("SetTaskStatus", {"taskId": task["taskId"], "taskStatus": "FINISHED"})
            done += 1
        return done

    calls_before = client.calls
    started = time.perf_counter()
    tasks = sum(await asyncio.gather(*(worker() for _ in range(connections))))
    elapsed = time.perf_counter() - started
    calls = client.calls - calls_before
    return {
        "workload": "cycle",
        "tasks": tasks,
        "calls": calls,
        "seconds": round(elapsed, 3),
        "calls_per_second": round(calls / elapsed),
        "tasks_per_second": round(tasks / elapsed),
    }


async def mixed(client: Client, seconds: float, connections: int) -> dict[str, Any]:
    """Progress reports on leased tasks, heartbeats and empty polls."""
    await add_pipeline(client, "bench-mixed", connections, "mixed")
    task_ids = []
    for _ in range(connections):
        polled = await client.call("PollForTask", {"workerGroup": "bench-mixed"})
        task_ids.append(polled["taskObject"]["taskId"])
    deadline = time.perf_counter() + seconds

    async def worker(index: int, task_id: str) -> None:
        runner = {"taskrunnerId": f"runner-{index}", "workerGroup": "bench-mixed"}
        progress = {"taskId": task_id, "fields": [{"key": "step", "stringValue": "1"}]}
        while time.perf_counter() < deadline:
            for _ in range(8):
                await client.call("ReportTaskProgress", progress)
            await client.call("ReportTaskRunnerHeartbeat", runner)
            await client.call("PollForTask", {"workerGroup": "bench-empty"})

    calls_before = client.calls
    started = time.perf_counter()
    await asyncio.gather(*(worker(i, task_id) for i, task_id in enumerate(task_ids)))
    elapsed = time.perf_counter() - started
    calls = client.calls - calls_before
    return {
        "workload": "mixed",
        "calls": calls,
        "seconds": round(elapsed, 3),
        "calls_per_second": round(calls / elapsed),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each workload")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--batch", type=int, default=1000, help="activities per pipeline")
    parser.add_argument(
        "--endpoint-url", help="measure a service already running (started with --poll-hold 0)"
    )
    parser.add_argument(
        "--state-only", action="store_true", help="measure only the service with --state FILE"
    )
    args = parser.parse_args()
    if args.endpoint_url:
        await measure(args, None, args.endpoint_url, state=False)
        return
    with tempfile.TemporaryDirectory() as folder:
        for state in ([] if args.state_only else [None]) + [os.path.join(folder, "state.db")]:
            process, url = await start_service(state)
            await measure(args, process, url, state=state is not None)


async def measure(
    args: argparse.Namespace,
    process: asyncio.subprocess.Process | None,
    url: str,
    *,
    state: bool,
) -> None:
    try:
        connector = aiohttp.TCPConnector(limit=args.connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = Client(session, url)
            for result in (
                await cycle(client, args.seconds, args.connections, args.batch),
                await mixed(client, args.seconds, args.connections),
            ):
                line = {**result, "connections": args.connections, "state": state}
                print(json.dumps(line), flush=True)
    finally:
        if process is not None:
            process.terminate()
            await process.wait()


if __name__ == "__main__":
    asyncio.run(main())
