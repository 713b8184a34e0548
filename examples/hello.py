"""Hello, pipeworker: one worker group, four activities, run locally without an AWS account.

From the repository root::

    python -m pipeworker examples.hello:worker --local

starts the built-in local Data Pipeline service, activates ``hello.json`` (Fetch, then two greetings
side by side, then Report), runs this worker against it and exits when the pipeline is done.
Against AWS, drop ``--local``: the same worker polls the ``hello`` worker group.
"""

from __future__ import annotations

import asyncio

from pipeworker import Task, Worker

PIPELINE_DEFINITION = "hello.json"
"""What ``--local`` runs when no ``--pipeline`` is given (relative to this file)."""

worker = Worker(max_concurrency=4)


@worker.activity("hello")
async def hello(task: Task) -> None:
    """Every activity of the demo comes here; its ``step`` field says what to do."""
    step = task.field("step")
    greeting = task.field("greeting", "Hi")  # inherited from the Default object
    if step == "fetch":
        items = int(task.field("items", "1"))
        for done in range(1, items + 1):
            await asyncio.sleep(0.1)
            await task.report_progress(fetched=done)
        task.logger.info("fetched %d item%s", items, "" if items == 1 else "s")
    elif step == "greet":
        audience = task.field("audience", "world")
        await asyncio.sleep(0.2)
        task.logger.info("%s, %s!", greeting, audience)
    elif step == "report":
        task.logger.info("everyone was greeted")
    else:
        raise ValueError(f"unknown step {step!r}")
