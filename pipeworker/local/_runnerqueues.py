"""Data Pipeline's runnable instances by worker group, and the polls waiting for them.

An instance offered to a worker group goes to the oldest waiting poll whose client is still
connected, and is handed out at once (its attempt made, its lease started); else it queues until
a poll takes it. A poll whose client hung up is skipped: a task handed to it would be stranded
until the acknowledgement window ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pipeworker.local._state import Instance, Task

__all__ = ["RunnerQueues"]


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[Task | None]
    hostname: str
    alive: Callable[[], bool] | None

    def ready(self) -> bool:
        if self.future.done():
            return False
        if self.alive is not None and not self.alive():
            _expire(self.future)
            return False
        return True


class RunnerQueues:
    """The runnable instances and waiting polls of one service.

    Args:
        hand_out: starts an attempt of an instance for the polling host and returns its task.
    """

    def __init__(self, hand_out: Callable[[Instance, str], Task]) -> None:
        self._hand_out = hand_out
        self._ready: dict[str, deque[Instance]] = {}
        self._waiters: dict[str, deque[_Waiter]] = {}

    def offer(self, instance: Instance) -> None:
        """Hand a WAITING_FOR_RUNNER *instance* to a waiting poll, or queue it."""
        waiters = self._waiters.get(instance.worker_group)
        while waiters:
            waiter = waiters.popleft()
            if waiter.ready():
                waiter.future.set_result(self._hand_out(instance, waiter.hostname))
                return
        if not instance.in_queue:
            instance.in_queue = True
            self._ready.setdefault(instance.worker_group, deque()).append(instance)

    def _take(self, worker_group: str) -> Instance | None:
        queue = self._ready.get(worker_group)
        while queue:
            instance = queue.popleft()
            instance.in_queue = False
            if instance.status == "WAITING_FOR_RUNNER":
                return instance
        return None

    async def wait(
        self, worker_group: str, hostname: str, alive: Callable[[], bool] | None, hold: float
    ) -> Task | None:
        """A task for *worker_group*: at once if one is runnable, else the first within *hold*."""
        instance = self._take(worker_group)
        if instance is not None:
            return self._hand_out(instance, hostname)
        if hold <= 0:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Task | None] = loop.create_future()
        waiter = _Waiter(future, hostname, alive)
        waiters = self._waiters.setdefault(worker_group, deque())
        waiters.append(waiter)
        timer = loop.call_later(hold, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()
            if not future.done() or future.cancelled() or future.result() is None:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)

    def close(self) -> None:
        """Answer every waiting poll with no task (the service stops)."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                _expire(waiter.future)
        self._waiters.clear()


def _expire(future: asyncio.Future[Task | None]) -> None:
    if not future.done():
        future.set_result(None)
