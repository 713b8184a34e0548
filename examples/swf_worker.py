"""An Amazon SWF activity worker: results, failures, heartbeats with progress, cancellation.

Against AWS (the domain, activity types and a decider are yours)::

    python -m pipeworker examples.swf_worker:worker

On a laptop, against the local service's SWF subset (it registers the domain and types,
schedules three activities as a decider would, runs the worker until they are done and prints
what became of each)::

    python examples/swf_worker.py
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pipeworker import SWF, TaskFailed, Worker
from pipeworker.services.swf import ActivityTask

DOMAIN = "orders"
TASK_LIST = "orders-activities"


def make_worker(**settings: Any) -> Worker:
    """The worker with its two activities; *settings* go to :class:`~pipeworker.Worker`."""
    worker = Worker(service=SWF(domain=DOMAIN), **settings)

    @worker.activity(TASK_LIST, type="charge")
    async def charge(task: ActivityTask) -> dict[str, Any]:
        # A dict is returned: the activity's result is its JSON.
        order = json.loads(task.input or "{}")
        if order.get("amount", 0) <= 0:
            raise TaskFailed("InvalidAmount", f"order {order.get('id')} has no amount")
        for step in range(3):
            await task.heartbeat({"step": step, "of": 3})  # only the latest goes with a beat
            await asyncio.sleep(0.05)
        task.logger.info("charged order %s (%s)", order["id"], task.workflow_execution.workflow_id)
        return {"order": order["id"], "charged": order["amount"]}

    @worker.activity(TASK_LIST, type="ship")
    def ship(task: ActivityTask) -> str:
        # A plain function runs in a thread; heartbeat() needs no await there.
        task.heartbeat("packing")
        return f"shipped {json.loads(task.input or '{}').get('id')}"

    return worker


worker = make_worker()


async def demo() -> list[dict[str, Any]]:
    """Run the worker against an in-process local service; return the tasks' history."""
    from aiobotocore.session import get_session

    from pipeworker.local import LocalConfig, LocalService

    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    async with LocalService(LocalConfig(poll_hold=1.0)) as service:
        async with get_session().create_client(
            "swf", region_name="us-east-1", endpoint_url=service.endpoint_url
        ) as client:
            await client.register_domain(name=DOMAIN, workflowExecutionRetentionPeriodInDays="1")
            for name in ("charge", "ship"):
                await client.register_activity_type(
                    domain=DOMAIN,
                    name=name,
                    version="1",
                    defaultTaskList={"name": TASK_LIST},
                    defaultTaskHeartbeatTimeout="30",
                )
        orders = [("charge", {"id": "o-1", "amount": 42}), ("charge", {"id": "o-2"})]
        orders.append(("ship", {"id": "o-1"}))
        for kind, order in orders:
            service.schedule_activity_task(DOMAIN, (kind, "1"), input=json.dumps(order))
        local = make_worker(
            endpoint_url=service.endpoint_url, region="us-east-1", shutdown_grace=1.0
        )
        async with local:
            while any(  # noqa: ASYNC110 (a demo: poll the service's record)
                t["status"] == "SCHEDULED" or t["status"] == "STARTED"
                for t in service.swf_task_history()
            ):
                await asyncio.sleep(0.05)
        return service.swf_task_history()


if __name__ == "__main__":
    for record in asyncio.run(demo()):
        outcome = record.get("result") or record.get("reason")
        print(f"{record['activityType']['name']:<7} {record['status']:<10} {outcome}")
