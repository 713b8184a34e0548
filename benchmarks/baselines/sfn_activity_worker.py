"""The PyPI ``stepfunctions-activity-worker`` (1.1.3), run as its README says: ``ActivityWorker(
activity_arn, fn, worker_count=N, client=<a client with read_timeout=70>).listen()``.

Fair to it: its client gets a connection pool as large as the worker count, and its chatty
``print`` calls go to /dev/null. A task counts once its SendTaskSuccess answered; the report
adds ``duplicates``, tokens handed to the function more than once (there should be none).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import boto3
from botocore.config import Config

from benchmarks.baselines._common import Meter, parse_args


def main() -> None:
    from stepfunctions_activity_worker import ActivityWorker

    args = parse_args(__doc__ or "")
    client = boto3.client(
        "stepfunctions",
        region_name=args.region,
        endpoint_url=args.endpoint_url,
        config=Config(read_timeout=70, max_pool_connections=max(args.concurrency, 10)),
    )
    meter = Meter(args.tasks)
    done = threading.Event()
    seen: set[str] = set()
    duplicates = 0
    lock = threading.Lock()
    send_task_success = client.send_task_success

    def counted_success(**params: Any) -> Any:
        nonlocal duplicates
        with lock:
            if params["taskToken"] in seen:
                duplicates += 1
            seen.add(params["taskToken"])
        answer = send_task_success(**params)
        meter.count()
        if meter.finished:
            done.set()
        return answer

    client.send_task_success = counted_success  # type: ignore[method-assign]

    def noop(**task_input: Any) -> dict[str, Any]:
        return {}

    activity = f"arn:aws:states:us-east-1:123456789012:activity:{args.worker_group}"
    worker = ActivityWorker(activity, noop, worker_count=args.concurrency, client=client)
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    meter.start()
    threading.Thread(target=worker.listen, daemon=True).start()
    done.wait()
    stdout.write(json.dumps({**meter.result, "duplicates": duplicates}) + "\n")
    stdout.flush()
    os._exit(0)  # its poller and task threads never end on their own


if __name__ == "__main__":
    main()
