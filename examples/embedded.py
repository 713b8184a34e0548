"""A worker inside an aiohttp web application: one process, one event loop, one lifecycle.

The worker starts with the application (``async with worker`` returns once polling is armed) and
stops with it, gracefully; aiohttp owns the signals, so the worker installs none. Handlers and
request handlers share the loop, so a route can show what the worker is doing::

    PIPEWORKER_ENDPOINT_URL=http://127.0.0.1:8999 python examples/embedded.py   # or AWS settings

then ``curl http://127.0.0.1:8080/status``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web

from pipeworker import Task, Worker

WORKER = web.AppKey("worker", Worker)
DONE = web.AppKey("done", list)


def create_app(worker: Worker) -> web.Application:
    """The web application, running *worker* for as long as the application runs."""
    app = web.Application()
    app[WORKER] = worker
    app[DONE] = []

    @worker.activity("embedded")
    async def record(task: Task) -> None:
        app[DONE].append(task.field("message", ""))
        task.logger.info("handled %s in the web app's loop", task.attempt_id)

    async def run_worker(app: web.Application) -> AsyncIterator[None]:
        async with app[WORKER]:
            yield

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"handled": request.app[DONE]})

    app.cleanup_ctx.append(run_worker)
    app.router.add_get("/status", status)
    return app


if __name__ == "__main__":
    worker = Worker(
        endpoint_url=os.environ.get("PIPEWORKER_ENDPOINT_URL"),
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    web.run_app(create_app(worker), host="127.0.0.1", port=8080)
