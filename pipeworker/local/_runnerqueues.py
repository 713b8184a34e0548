"""Data Pipeline's runnable instances by worker group, on the shared long-poll queue.

An instance offered to a worker group goes to the oldest waiting poll whose client is still
connected, else it queues until a poll takes it (:class:`~pipeworker.local._longpoll.LongPollQueue`,
as for SWF and Step Functions). The poll that receives it hands it out (its attempt made, its lease
started, in its runner's hostname); a poll whose client hung up is skipped, so no task waits out
its acknowledgement window behind a dead connection. What Data Pipeline adds: an instance is
queued once however often it is offered, and one that stopped waiting for a runner while queued or
in flight (cancelled, paused, taken by another poll) is passed over.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeworker.local._longpoll import LongPollQueue
from pipeworker.local._state import Instance, Task

__all__ = ["RunnerQueues"]


class RunnerQueues:
    """The runnable instances and waiting polls of one service.

    Args:
        hand_out: starts an attempt of an instance for the polling host and returns its task.
    """

    def __init__(self, hand_out: Callable[[Instance, str], Task]) -> None:
        self._hand_out = hand_out
        self._queue: LongPollQueue[Instance] = LongPollQueue()

    def offer(self, instance: Instance) -> None:
        """Hand a WAITING_FOR_RUNNER *instance* to a waiting poll, or queue it (once)."""
        if instance.in_queue:
            return
        if not self._queue.offer(instance.worker_group, instance):
            instance.in_queue = True

    async def wait(
        self, worker_group: str, hostname: str, alive: Callable[[], bool] | None, hold: float
    ) -> Task | None:
        """A task for *worker_group*: at once if one is runnable, else the first within *hold*."""
        instance = await self._queue.take(worker_group, hold, alive, _claim)
        return None if instance is None else self._hand_out(instance, hostname)

    def waiting(self, worker_group: str) -> int:
        """How many polls are waiting on *worker_group* now."""
        return self._queue.waiting(worker_group)

    def close(self) -> None:
        """Answer every waiting poll with no task (the service stops)."""
        self._queue.close()


def _claim(instance: Instance) -> bool:
    """Whether a taken *instance* still waits for a runner (it is out of the queue now)."""
    instance.in_queue = False
    return instance.status == "WAITING_FOR_RUNNER"
