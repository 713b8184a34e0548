"""A Step Functions activity worker: JSON in and out, a custom error a Catch routes, heartbeats.

The state machine it serves is ``sfn_worker.asl.json`` beside this file. Against AWS (create
the activity and the state machine first; set ``RESIZE_ACTIVITY_ARN`` if your account or region
differ from the definition's)::

    python -m pipeworker examples.sfn_worker:worker

On a laptop, against the local service's Step Functions (it creates the activity and the state
machine, starts three executions, runs the worker until they end and prints each outcome)::

    python examples/sfn_worker.py
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pipeworker import StepFunctions, TaskFailed, Worker
from pipeworker.services.stepfunctions import StepFunctionsTask

DEFINITION = Path(__file__).with_name("sfn_worker.asl.json")
ACTIVITY = os.environ.get(
    "RESIZE_ACTIVITY_ARN", "arn:aws:states:us-east-1:123456789012:activity:resize"
)
HEARTBEAT_SECONDS = 30
"""The Resize state's HeartbeatSeconds: the worker beats every third of it."""


def make_worker(**settings: Any) -> Worker:
    """The worker and its activity; *settings* go to :class:`~pipeworker.Worker`."""
    service = StepFunctions(heartbeat_seconds={ACTIVITY: HEARTBEAT_SECONDS})
    worker = Worker(service=service, **settings)

    @worker.activity(ACTIVITY)
    async def resize(task: StepFunctionsTask) -> dict[str, Any]:
        image = task.input["image"]  # the state's input, decoded from JSON
        if image.endswith(".gif"):
            # SendTaskFailure(error, cause): the state's Catch routes it to "Skipped".
            raise TaskFailed("UnsupportedFormat", "gifs are not resized")
        await asyncio.sleep(float(task.input.get("seconds", 0.05)))  # the work
        await task.heartbeat()  # optional: heartbeats go out on the worker's cadence anyway
        task.logger.info("resized %s", image)
        return {"image": image, "width": 640}  # SendTaskSuccess(output=<this, as JSON>)

    return worker


worker = make_worker()


async def demo() -> list[dict[str, Any]]:
    """Run the worker against an in-process local service; return each execution's outcome."""
    from aiobotocore.session import get_session

    from pipeworker.local import LocalConfig, LocalService

    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    # time_scale 0.01: the definition's 30 s heartbeat timeout lasts 0.3 s here.
    async with (
        LocalService(LocalConfig(poll_hold=1.0, time_scale=0.01)) as service,
        get_session().create_client(
            "stepfunctions", region_name="us-east-1", endpoint_url=service.endpoint_url
        ) as sfn,
    ):
        activity = (await sfn.create_activity(name="resize"))["activityArn"]
        machine = await sfn.create_state_machine(
            name="resize-images",
            definition=DEFINITION.read_text().replace(ACTIVITY, activity),
            roleArn="arn:aws:iam::123456789012:role/local",
        )
        executions = [
            await sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], input=json.dumps({"image": image})
            )
            for image in ("cat.png", "anim.gif", "dog.jpg")
        ]
        local = make_worker(
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            shutdown_grace=1.0,
            progress_interval=0.1,
        )
        outcomes = []
        async with local:
            for started in executions:
                arn = started["executionArn"]
                described = await sfn.describe_execution(executionArn=arn)
                while described["status"] == "RUNNING":
                    await asyncio.sleep(0.05)
                    described = await sfn.describe_execution(executionArn=arn)
                output = json.loads(described.get("output", "null"))
                outcomes.append({"status": described["status"], "output": output})
        return outcomes


if __name__ == "__main__":
    for outcome in asyncio.run(demo()):
        print(f"{outcome['status']:<10} {json.dumps(outcome['output'])}")
