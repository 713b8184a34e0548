"""What a running worker tells the outside: events for observers, lifecycle hooks for subclasses.

The supervisor calls an :class:`Observer` at each event (a no-op by default) instead of keeping
counters itself, so metrics and health endpoints can be added without touching it. :class:`Hooks`
is the shape of the lifecycle methods a :class:`~pipeworker.Worker` (or a subclass) provides.
"""

from __future__ import annotations

from typing import Protocol

from pipeworker.exceptions import PipeworkerError
from pipeworker.services.base import Outcome, ReceivedTask
from pipeworker.task import Task

__all__ = ["Hooks", "Observer"]


class Observer:
    """Events of a running worker, for metrics and health checks; every method is a no-op.

    Subclass and override what you need. Methods are called on the event loop and must be cheap
    and never raise.
    """

    def poll_finished(self, queue: str, task: ReceivedTask | None) -> None:
        """A poll of *queue* answered, with a task or without."""

    def task_started(self, task: Task) -> None:
        """A task's handler was started."""

    def progress_reported(self, task: Task, canceled: bool) -> None:
        """A progress report (or the acknowledgement) landed."""

    def task_finished(self, task: Task, outcome: Outcome | None) -> None:
        """A task ended; *outcome* is None when nothing was sent (cancelled, lease lost)."""

    def call_failed(self, error: PipeworkerError) -> None:
        """A service call failed (every failure, whether it is retried or not)."""

    def heartbeat_sent(self, queue: str, terminate: bool) -> None:
        """A runner heartbeat for *queue* landed."""


class Hooks(Protocol):
    """The lifecycle hooks a Worker (or a subclass) provides."""

    async def on_startup(self) -> None: ...
    async def on_shutdown(self) -> None: ...
    async def on_task_start(self, task: Task) -> None: ...
    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None: ...
