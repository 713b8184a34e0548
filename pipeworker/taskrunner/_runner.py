"""The task runner itself: a :class:`pipeworker.Worker` with the Java runner's built-in handlers.

Written on the public API only, as a user could have written it: handlers registered with
``worker.activity(group, type=...)``, the S3 client opened in ``on_startup`` and closed in
``on_shutdown``, the log shipper running beside the worker and shipping a last time on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pipeworker import Task, Worker
from pipeworker.taskrunner._activity import shell_command_activity
from pipeworker.taskrunner._logs import LogShipper
from pipeworker.taskrunner._preconditions import PRECONDITIONS
from pipeworker.taskrunner._s3 import S3Uri, open_s3
from pipeworker.taskrunner._shell import RunnerContext

__all__ = ["HANDLED_TYPES", "RunnerSettings", "TaskRunner"]

log = logging.getLogger("pipeworker.taskrunner")

Handler = Callable[[RunnerContext, Task], Awaitable[None]]

_HANDLERS: dict[str, Handler] = {
    "ShellCommandActivity": shell_command_activity,
    **PRECONDITIONS,
}
HANDLED_TYPES = tuple(sorted(_HANDLERS))
"""The object types the runner runs."""


@dataclass(frozen=True)
class RunnerSettings:
    """The runner's own settings (the worker's are in ``Worker(...)``).

    Attributes:
        worker_groups: the worker groups polled (``--workerGroup``).
        output: the ``--output`` directory.
        log_uri: ``--logUri``, or None.
        log_interval: seconds between log shipping cycles (an hour).
        kill_after: seconds a cancelled command gets between SIGTERM and SIGKILL.
        formatter: the format of the log files' lines.
    """

    worker_groups: Sequence[str]
    output: Path
    log_uri: S3Uri | None = None
    log_interval: float = 3600.0
    kill_after: float = 5.0
    formatter: logging.Formatter | None = None


class TaskRunner(Worker):
    """The Java Task Runner's replacement: ShellCommandActivity and the preconditions it runs.

    Args:
        settings: the runner's own settings.
        **worker_settings: passed to :class:`pipeworker.Worker`.
    """

    def __init__(self, settings: RunnerSettings, **worker_settings: Any) -> None:
        super().__init__(**worker_settings)
        formatter = settings.formatter or logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        self.settings = settings
        self.context = RunnerContext(
            output=settings.output, formatter=formatter, kill_after=settings.kill_after
        )
        self._shipper: LogShipper | None = None
        self._shipping: asyncio.Task[None] | None = None
        self._resources = contextlib.AsyncExitStack()
        for group in settings.worker_groups:
            for kind, handler in _HANDLERS.items():
                bound = partial(self._run, handler)
                # A readable name in the worker's logs and --check output.
                bound.__qualname__ = handler.__name__  # type: ignore[attr-defined]
                self.activity(group, type=kind)(bound)

    async def _run(self, handler: Handler, task: Task) -> None:
        await handler(self.context, task)

    def start_log_file(self) -> LogShipper:
        """Start writing the runner's log under ``--output`` (call once, before running)."""
        if self._shipper is None:
            self._shipper = LogShipper(
                self.settings.output,
                self.settings.log_uri,
                self.config.taskrunner_id,
                self.context.formatter,
                self.settings.log_interval,
            )
            self._shipper.install()
        return self._shipper

    async def on_startup(self) -> None:
        """Open the S3 client and start the log shipper."""
        self.settings.output.mkdir(parents=True, exist_ok=True)
        transfers = await self._resources.enter_async_context(open_s3(self.config.region))
        self.context.transfers = transfers
        log.info(
            "runner %s: worker groups %s, output %s, S3 at %s%s",
            self.config.taskrunner_id,
            ", ".join(self.settings.worker_groups),
            self.settings.output,
            transfers.endpoint_url,
            f", logs to {self.settings.log_uri}" if self.settings.log_uri else "",
        )
        shipper = self.start_log_file()
        self._shipping = asyncio.create_task(shipper.run(transfers), name="taskrunner-logs")

    async def on_shutdown(self) -> None:
        """Ship the logs a last time, then close the S3 client."""
        shipping, self._shipping = self._shipping, None
        if shipping is not None:
            shipping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shipping
        try:
            if self._shipper is not None:
                log.info("runner %s stopping: shipping the logs", self.config.taskrunner_id)
                await self._shipper.cycle(self.context.transfers)
        finally:
            self.context.transfers = None
            await self._resources.aclose()
