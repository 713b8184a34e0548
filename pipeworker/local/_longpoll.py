"""One long-poll queue: items offered to a key wake the oldest poll waiting on it at once.

A poll that finds nothing waits up to its hold on a future; an item offered meanwhile goes
straight to the oldest waiting poll whose client is still connected (a task handed to a client
that hung up would be lost), else into the key's queue. A poll cancelled just after it was handed
an item puts the item back at the head of the queue, so nothing is lost to a cancelled request.

Data Pipeline (keyed by worker group, 90 s hold), SWF (by domain and task list) and Step
Functions (by activity ARN) all wait here; the dispatcher sets :data:`CONNECTION_ALIVE` for each
poll so that a poll whose client hung up is never handed an item.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Generic, TypeVar

__all__ = ["CONNECTION_ALIVE", "LongPollQueue"]

CONNECTION_ALIVE: ContextVar[Callable[[], bool] | None] = ContextVar(
    "CONNECTION_ALIVE", default=None
)
"""Set by the HTTP layer for each poll: whether its client is still connected."""

_T = TypeVar("_T")
_Waiter = tuple["asyncio.Future[_T | None]", "Callable[[], bool] | None"]


class LongPollQueue(Generic[_T]):
    """Items queued by key, and the polls waiting for them, oldest first."""

    def __init__(self) -> None:
        self._items: dict[Hashable, deque[_T]] = {}
        self._waiters: dict[Hashable, deque[_Waiter[_T]]] = {}

    def offer(self, key: Hashable, item: _T) -> bool:
        """Hand *item* to the oldest live poll on *key* (True), or queue it (False)."""
        waiters = self._waiters.get(key)
        while waiters:
            future, alive = waiters.popleft()
            if future.done():
                continue
            if alive is not None and not alive():
                future.set_result(None)  # the client hung up: a task handed to it would be lost
                continue
            future.set_result(item)
            return True
        self._items.setdefault(key, deque()).append(item)
        return False

    def remove(self, key: Hashable, item: _T) -> bool:
        """Take *item* out of *key*'s queue; False if it was not queued (already handed out)."""
        queue = self._items.get(key)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        return True

    def waiting(self, key: Hashable) -> int:
        """How many polls are waiting on *key* now, their clients still connected."""
        return sum(
            1
            for future, alive in self._waiters.get(key, ())
            if not future.done() and (alive is None or alive())
        )

    async def take(
        self,
        key: Hashable,
        hold: float,
        alive: Callable[[], bool] | None = None,
        usable: Callable[[_T], bool] | None = None,
    ) -> _T | None:
        """The next item on *key*, waiting up to *hold* seconds; None when none came.

        An item *usable* refuses (a task stopped while it was queued or in flight to this
        poll) is dropped, and the poll goes on waiting for the rest of its hold.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(hold, 0.0)
        while True:
            item = await self._take_one(key, deadline - loop.time(), alive)
            if item is None or usable is None or usable(item):
                return item

    async def _take_one(
        self, key: Hashable, hold: float, alive: Callable[[], bool] | None
    ) -> _T | None:
        queue = self._items.get(key)
        if queue:
            return queue.popleft()
        future: asyncio.Future[_T | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, deque()).append((future, alive))
        try:
            async with asyncio.timeout(hold):
                return await future
        except TimeoutError:
            # An item delivered just as the hold ended is still this poll's.
            return future.result() if future.done() and not future.cancelled() else None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is not None:
                self._items.setdefault(key, deque()).appendleft(future.result())  # type: ignore[arg-type]
            raise
        finally:
            if not future.done():
                future.cancel()  # offer() skips it

    def close(self) -> None:
        """Answer every waiting poll with no item."""
        for waiters in self._waiters.values():
            for future, _ in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()
