"""A bare aiobotocore runner: one coroutine per slot, each polling, acknowledging and finishing.

The pool is as large as the concurrency and the read timeout above the hold, so what is measured is
botocore's per-call cost, not a misconfiguration.
"""

from __future__ import annotations

import asyncio

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from benchmarks.baselines._common import Meter, parse_args


async def run() -> None:
    args = parse_args(__doc__ or "")
    config = AioConfig(read_timeout=100, max_pool_connections=args.pool or args.concurrency)
    session = get_session()
    meter = Meter(args.tasks)
    async with session.create_client(
        "datapipeline", region_name=args.region, endpoint_url=args.endpoint_url, config=config
    ) as client:

        async def loop() -> None:
            while not meter.finished:
                answer = await client.poll_for_task(workerGroup=args.worker_group, hostname="bench")
                task = answer.get("taskObject")
                if not task:
                    continue
                await client.report_task_progress(taskId=task["taskId"])
                await client.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
                meter.count()

        meter.start()
        await asyncio.gather(*(loop() for _ in range(args.concurrency)))
    meter.print()


if __name__ == "__main__":
    asyncio.run(run())
