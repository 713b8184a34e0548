"""The floor: the same three JSON calls, signed by botocore's SigV4 signer, sent by bare aiohttp.

No model, no validation, no retries, no error mapping: what a runner costs when almost nothing but
the wire and the signature is left. It is the yardstick, not a runner anyone should ship.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import get_session

from benchmarks.baselines._common import Meter, parse_args


async def run() -> None:
    args = parse_args(__doc__ or "")
    credentials = get_session().get_credentials().get_frozen_credentials()
    signer = SigV4Auth(credentials, "datapipeline", args.region)
    meter = Meter(args.tasks)

    async def call(http: aiohttp.ClientSession, operation: str, params: dict[str, Any]) -> Any:
        request = AWSRequest(
            method="POST",
            url=args.endpoint_url + "/",
            data=json.dumps(params).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"DataPipeline.{operation}",
            },
        )
        signer.add_auth(request)
        async with http.post(request.url, data=request.body, headers=dict(request.headers)) as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{operation}: {r.status} {body}")
            return body

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def loop() -> None:
            while not meter.finished:
                poll = {"workerGroup": args.worker_group, "hostname": "bench"}
                task = (await call(http, "PollForTask", poll)).get("taskObject")
                if not task:
                    continue
                await call(http, "ReportTaskProgress", {"taskId": task["taskId"]})
                status = {"taskId": task["taskId"], "taskStatus": "FINISHED"}
                await call(http, "SetTaskStatus", status)
                meter.count()

        meter.start()
        await asyncio.gather(*(loop() for _ in range(args.concurrency)))
    meter.print()


if __name__ == "__main__":
    asyncio.run(run())
