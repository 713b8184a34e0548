"""Pacing: one shared budget per operation, so a worker stays inside the account's rate limits.

A service declares its account's budgets (:attr:`Service.rate_limits
<pipeworker.services.base.Service.rate_limits>`: connection method -> token bucket); methods
declaring the same wire operation share one :class:`Budget` (Data Pipeline's acknowledgement and
progress reports are both ReportTaskProgress). :class:`PacedConnection` wraps the connection, so
every attempt of a call, retries included, takes a token before it is sent, and the supervisor
never sees the pacing.

When a budget has no token, callers queue in one heap, served in this order:

1. **urgent**: acknowledgements (the 2-minute window) and final statuses, first come first served;
2. **routine** progress reports, the task whose lease ends soonest first (earliest deadline
   first), so a report may be delayed, spread within its lease, but the tasks closest to losing
   theirs always report next;
3. **polls**: new work waits until the work in hand is safe.

A queued caller is one future in the heap and one timer per budget: no asyncio task per waiter,
O(log n) per call. A caller cancelled while queued leaves a dead entry skipped later; one
cancelled after its token was granted gives the token back. :meth:`Pacer.stop_polls` answers every
queued and later poll at once as "no task" (the poll was never sent), so pacing never delays a
shutdown.

If the budget cannot keep every lease (more tasks than ``rate x lease`` reports), a WARNING says so
once, with how many tasks it can keep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pipeworker._bucket import TokenBucket
from pipeworker.services.base import Outcome, RateLimit, ReceivedTask, Service

if TYPE_CHECKING:
    from pipeworker._events import Observer
    from pipeworker._lease import Leases

__all__ = [
    "POLL",
    "ROUTINE",
    "URGENT",
    "Budget",
    "PacedConnection",
    "Pacer",
    "RateLimitSetting",
    "resolve_rate_limits",
]

log = logging.getLogger("pipeworker.pacing")

RateLimitSetting = Literal["auto", "service"] | Mapping[str, RateLimit] | None
"""``Worker(rate_limits=...)``: ``"auto"``, ``"service"``, None (off) or explicit budgets."""

URGENT = 0
"""Acknowledgements, final statuses, runner heartbeats: served first, in arrival order."""
ROUTINE = 1
"""Progress reports: served after urgent calls, the soonest lease end first."""
POLL = 2
"""Polls: served last, in arrival order."""

_PRIORITY = {"report_progress": ROUTINE, "poll": POLL}

SAFETY = 0.8
"""A budget is deemed able to keep a lease when a full round of reports fits in this fraction."""


def _is_aws(endpoint_url: str | None) -> bool:
    if endpoint_url is None:
        return True
    host = urllib.parse.urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def resolve_rate_limits(
    setting: RateLimitSetting, service: Service[Any], endpoint_url: str | None
) -> Mapping[str, RateLimit] | None:
    """The budgets a worker paces its calls by, or None when pacing is off.

    ``"service"`` is the service's declared budgets; ``"auto"`` is the same when the worker talks
    to AWS (no ``endpoint_url``, or one under ``amazonaws.com``) and off for any other endpoint
    (the local service, which enforces no limits unless asked); a mapping is used as given.
    """
    if setting is None:
        return None
    if setting == "auto":
        setting = "service" if _is_aws(endpoint_url) else None
        if setting is None:
            return None
    if setting == "service":
        return dict(service.rate_limits) or None
    assert not isinstance(setting, str)
    return dict(setting) or None


class Budget:
    """A token bucket with a queue: callers take a token, or wait in priority order for one.

    Args:
        limit: the bucket's rate and burst; it starts full.
        name: for messages (the wire operation).
    """

    __slots__ = ("_bucket", "_heap", "_seq", "_timer", "limit", "name", "waiting")

    def __init__(self, limit: RateLimit, name: str | None = None) -> None:
        self.limit = limit
        self.name = name or limit.operation
        self._bucket = TokenBucket(limit.rate, limit.burst)
        # (priority, deadline, seq, future, operation); the future's result: granted or not.
        self._heap: list[tuple[int, float, int, asyncio.Future[bool], str]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.waiting = 0
        """Callers queued now (cancelled ones excluded once they are skipped)."""

    def try_take(self, now: float) -> bool:
        """Take a token at once if nobody is queued and one is there."""
        if self._heap:
            self._bucket.refill(now)
            return False
        return self._bucket.take(now)

    async def take(self, priority: int, deadline: float, operation: str = "") -> bool:
        """Wait for a token; True once it is taken, False if :meth:`release` let the caller go.

        Callers are served by *priority*, then *deadline* (loop time), then arrival.
        """
        loop = asyncio.get_running_loop()
        if self.try_take(loop.time()):
            return True
        waiter: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._heap, (priority, deadline, next(self._seq), waiter, operation))
        self.waiting += 1
        self._schedule(loop)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Granted, but the caller was cancelled before it could send: give it back.
                if waiter.result():
                    self._bucket.tokens += 1.0
                    self._dispatch(loop)
            else:
                self.waiting -= 1
            raise

    def release(self, operation: str) -> int:
        """Let every caller queued for *operation* go without a token; return how many."""
        released = 0
        for _, _, _, waiter, queued in self._heap:
            if queued == operation and not waiter.done():
                waiter.set_result(False)
                self.waiting -= 1
                released += 1
        return released

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            return
        self._timer = loop.call_later(self._bucket.seconds_to_token(), self._wake, loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        bucket = self._bucket
        bucket.refill(loop.time())
        heap = self._heap
        while heap:
            waiter = heap[0][3]
            if waiter.done():  # cancelled while queued, or released
                heapq.heappop(heap)
                continue
            if bucket.tokens < 1.0:
                break
            heapq.heappop(heap)
            bucket.tokens -= 1.0
            self.waiting -= 1
            waiter.set_result(True)
        if heap and self._timer is None:
            self._schedule(loop)

    def close(self) -> None:
        """Cancel the refill timer (the worker is done with this budget)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Pacer:
    """The budgets of one running worker, by connection method.

    Args:
        limits: connection method -> budget; methods naming the same operation share a bucket.
        observer: told how long each paced call waited (``call_paced``), if it listens.
    """

    def __init__(self, limits: Mapping[str, RateLimit], observer: Observer | None = None) -> None:
        by_operation: dict[str, Budget] = {}
        self.budgets: dict[str, Budget] = {}
        for method, limit in limits.items():
            budget = by_operation.get(limit.operation)
            if budget is None:
                budget = by_operation[limit.operation] = Budget(limit)
            self.budgets[method] = budget
        self._observer = observer
        self._timed = observer is not None and _listens(observer)
        self._polls_stopped = False
        self._warned = False

    def check_capacity(self, tasks: int, lease_seconds: float) -> bool:
        """Whether the progress budget keeps *tasks* leases of *lease_seconds*; warns once if not.

        Each task needs one report per lease; a budget of ``rate`` reports a second keeps
        about ``rate x lease x SAFETY`` tasks.
        """
        budget = self.budgets.get("report_progress")
        if budget is None or not math.isfinite(lease_seconds):
            return True
        keeps = int(budget.limit.rate * lease_seconds * SAFETY)
        if tasks <= keeps:
            return True
        if not self._warned:
            self._warned = True
            log.warning(
                "the %s budget (%g/s) cannot keep every lease: %d tasks report at best every "
                "%.0fs each, but their leases allow %.0fs; it keeps about %d tasks. Lower "
                "max_concurrency or lengthen reportProgressTimeout (the budget is shared by "
                "every runner in the account)",
                budget.name,
                budget.limit.rate,
                tasks,
                tasks / budget.limit.rate,
                lease_seconds,
                keeps,
            )
        return False

    async def take(self, method: str, deadline: float = 0.0) -> bool:
        """Take *method*'s token (waiting if needed); False if a stop let a poll go unsent."""
        budget = self.budgets.get(method)
        if budget is None:
            return True
        if method == "poll" and self._polls_stopped:
            return False
        loop = asyncio.get_running_loop()
        if budget.try_take(loop.time()):
            if self._timed:
                self._observer.call_paced(method, 0.0)  # type: ignore[union-attr]
            return True
        priority = _PRIORITY.get(method, URGENT)
        if priority == ROUTINE and not self._warned:
            # Each report queued is one task's turn in a round: a round that outlasts the
            # time left on this lease cannot keep every lease.
            self.check_capacity(budget.waiting + 1, max(deadline - loop.time(), 0.0))
        started = loop.time()
        granted = await budget.take(priority, deadline if priority == ROUTINE else started, method)
        if self._timed:
            self._observer.call_paced(method, loop.time() - started)  # type: ignore[union-attr]
        return granted

    def stop_polls(self) -> None:
        """Answer queued polls (and every later one) at once, unsent: the worker is stopping."""
        self._polls_stopped = True
        budget = self.budgets.get("poll")
        if budget is not None:
            budget.release("poll")

    def close(self) -> None:
        """Stop every budget's timer."""
        for budget in self.budgets.values():
            budget.close()


def _listens(observer: Observer) -> bool:
    from pipeworker._events import listens

    return listens(observer, "call_paced")


class PacedConnection:
    """A connection whose calls each take a token from their budget before they are sent.

    Routine reports are ordered by when each task's lease ends, read from the worker's
    :class:`~pipeworker._lease.Leases` (the task scope keeps them).

    Args:
        inner: the connection (or an observed one) to send through.
        pacer: the worker's budgets.
        leases: the running tasks' leases.
    """

    def __init__(self, inner: Any, pacer: Pacer, leases: Leases) -> None:
        self._inner = inner
        self._pacer = pacer
        self._leases = leases

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def poll(self, queue: str) -> ReceivedTask | None:
        if not await self._pacer.take("poll"):
            return None  # stopping: the poll was never sent, so no task can be lost
        received: ReceivedTask | None = await self._inner.poll(queue)
        return received

    async def acknowledge(self, task: ReceivedTask) -> bool:
        await self._pacer.take("acknowledge")
        canceled: bool = await self._inner.acknowledge(task)
        return canceled

    async def report_progress(
        self, task: ReceivedTask, details: Mapping[str, Any] | None = None
    ) -> bool:
        await self._pacer.take("report_progress", self._leases.ends(task.id))
        canceled: bool = await self._inner.report_progress(task, details)
        return canceled

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        await self._pacer.take("finish")
        await self._inner.finish(task, outcome)

    async def canceled(self, task: ReceivedTask) -> None:
        await self._pacer.take("canceled")
        await self._inner.canceled(task)

    async def heartbeat(self, queue: str) -> bool:
        await self._pacer.take("heartbeat")
        terminate: bool = await self._inner.heartbeat(queue)
        return terminate

    async def evaluate(self, task: ReceivedTask, expression: str) -> str:
        await self._pacer.take("evaluate")
        answer: str = await self._inner.evaluate(task, expression)
        return answer
