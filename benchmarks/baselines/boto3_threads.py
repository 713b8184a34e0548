"""A hand-written boto3 task runner, the way a user writes one: a thread pool of poll loops.

Fair to boto3: the read timeout is raised above the poll hold and the connection pool is as large
as the thread pool (the default of 10 would cap it at concurrency 32).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from benchmarks.baselines._common import Meter, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    client = boto3.client(
        "datapipeline",
        region_name=args.region,
        endpoint_url=args.endpoint_url,
        config=Config(read_timeout=100, max_pool_connections=args.concurrency),
    )
    meter = Meter(args.tasks)

    def loop() -> None:
        while not meter.finished:
            answer = client.poll_for_task(workerGroup=args.worker_group, hostname="bench")
            task = answer.get("taskObject")
            if not task:
                continue
            client.report_task_progress(taskId=task["taskId"])
            client.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
            meter.count()

    meter.start()
    with ThreadPoolExecutor(args.concurrency) as pool:
        for future in [pool.submit(loop) for _ in range(args.concurrency)]:
            future.result()
    meter.print()
    os._exit(0)  # do not wait for idle pollers' held connections to close


if __name__ == "__main__":
    main()
