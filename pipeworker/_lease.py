"""Every running task's lease, kept in one place: how long it is, when it ends, why it was lost.

The task scope (``pipeworker._scope``) is the only writer:

- a task is *received*: until its acknowledgement lands it has the service's acknowledgement
  window;
- each acknowledgement or progress report that lands *renews* it for the task's lease (its own
  when it sets a shorter one, such as Data Pipeline's ``reportProgressTimeout``, else the
  service's);
- an answer saying the task is gone records why it was *lost*, for the handler's cancellation;
- the task's end *forgets* it.

Pacing reads when each lease ends, to send the report of the task closest to losing it first;
metrics read how much of it was left when a report landed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pipeworker.services.base import ReceivedTask

__all__ = ["Lease", "Leases"]


class Lease:
    """One task's lease.

    Attributes:
        seconds: how long a renewal keeps it.
        ends: when it ends unless renewed (on the leases' clock).
        lost: why it was lost (the service's answer), or None.
    """

    __slots__ = ("ends", "lost", "seconds")

    def __init__(self, seconds: float, ends: float) -> None:
        self.seconds = seconds
        self.ends = ends
        self.lost: str | None = None


class Leases:
    """The leases of a worker's running tasks, by task id.

    Args:
        service_seconds: the service's lease, for tasks that set none of their own.
        ack_window: how long a received task is this runner's before its acknowledgement lands;
            None where the poll starts the task (its lease runs from the poll).
        clock: seconds on a monotonic clock.
    """

    def __init__(
        self,
        service_seconds: float,
        ack_window: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_seconds = service_seconds
        self.ack_window = ack_window
        self.clock = clock
        self._by_id: dict[str, Lease] = {}

    def received(self, task: ReceivedTask) -> None:
        """Start *task*'s lease: the acknowledgement window, until the first renewal."""
        own = task.lease_seconds
        seconds = self.service_seconds if own is None else min(own, self.service_seconds)
        first = seconds if self.ack_window is None else self.ack_window
        self._by_id[task.id] = Lease(seconds, self.clock() + first)

    def renewed(self, task_id: str) -> None:
        """An acknowledgement or progress report about the task landed."""
        lease = self._by_id.get(task_id)
        if lease is not None:
            lease.ends = self.clock() + lease.seconds

    def lost(self, task_id: str, why: str) -> None:
        """The service answered that the task is not this runner's any more."""
        lease = self._by_id.get(task_id)
        if lease is not None:
            lease.lost = why

    def forget(self, task_id: str) -> None:
        """The task ended: nothing more is sent about it."""
        self._by_id.pop(task_id, None)

    def get(self, task_id: str) -> Lease | None:
        """The task's lease, or None for a task not running here."""
        return self._by_id.get(task_id)

    def ends(self, task_id: str) -> float:
        """When the task's lease ends; infinity for a task not running here."""
        lease = self._by_id.get(task_id)
        return math.inf if lease is None else lease.ends

    def left(self, task_id: str) -> float | None:
        """Seconds left on the task's lease now, or None for a task not running here."""
        lease = self._by_id.get(task_id)
        return None if lease is None else lease.ends - self.clock()
