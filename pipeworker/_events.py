"""What a running worker tells the outside: events for observers, lifecycle hooks for subclasses.

The supervisor calls an :class:`Observer` at each event (a no-op by default) instead of keeping
counters itself, so metrics and health endpoints can be added without touching it. :class:`Hooks`
is the shape of the lifecycle methods a :class:`~pipeworker.Worker` (or a subclass) provides.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from pipeworker.exceptions import PipeworkerError, TransientServiceError
from pipeworker.services.base import Outcome, ReceivedTask
from pipeworker.task import BaseTask

log = logging.getLogger("pipeworker.supervisor")

__all__ = [
    "Hooks",
    "ObservedConnection",
    "Observer",
    "combine",
    "listens",
    "observe_connection",
    "wants_calls",
]


class Observer:
    """Events of a running worker, for metrics and health checks; every method is a no-op.

    Subclass and override what you need. Methods are called on the event loop and must be cheap
    and never raise.
    """

    def poll_finished(self, queue: str, task: ReceivedTask | None) -> None:
        """A poll of *queue* answered, with a task or without."""

    def task_started(self, task: BaseTask) -> None:
        """A task's handler was started."""

    def progress_reported(self, task: BaseTask, canceled: bool) -> None:
        """A progress report (or the acknowledgement) landed."""

    def task_finished(self, task: BaseTask, outcome: Outcome | None) -> None:
        """A task ended; *outcome* is None when nothing was sent (cancelled, lease lost)."""

    def call_failed(self, error: PipeworkerError) -> None:
        """A service call failed (every failure, whether it is retried or not)."""

    def heartbeat_sent(self, queue: str, terminate: bool) -> None:
        """A runner heartbeat for *queue* landed."""

    def thread_lingering(self, running: bool) -> None:
        """A plain-function handler's thread outlived its task (*running* True: it ignored a
        cancellation and keeps its slot), or such a thread finally ended (False)."""

    def call_finished(
        self, operation: str, error: BaseException | None, seconds: float, retry: bool
    ) -> None:
        """One attempt of a service call ended, successful (*error* None) or not.

        *operation* is the connection method (``poll``, ``acknowledge``, ``report_progress``,
        ``finish``, ``heartbeat``, ``evaluate``, ...); *retry* is True when the attempt repeats
        the same call after a transient failure. Only called when the observer overrides it.
        """

    def call_paced(self, operation: str, seconds: float) -> None:
        """A call of *operation* waited *seconds* (0 when it did not) for its rate-limit budget.

        Only called while the worker paces its calls, and only when the observer overrides it.
        """


class Hooks(Protocol):
    """The lifecycle hooks a Worker (or a subclass) provides."""

    async def on_startup(self) -> None: ...
    async def on_shutdown(self) -> None: ...
    # The task is the service's own class (a Task, an ActivityTask...): typed Any here so that
    # a subclass may annotate its hooks with it.
    async def on_task_start(self, task: Any) -> None: ...
    async def on_task_end(self, task: Any, outcome: Outcome | None) -> None: ...


def _overrides(observer: Observer, name: str) -> bool:
    return name in vars(observer) or getattr(type(observer), name) is not getattr(Observer, name)


class _Fanout(Observer):
    # Every event goes to each observer in turn. An observer whose method raises is logged once,
    # with its trace, and then left out of every event (trio's Instruments do the same): a
    # broken metric must never take a worker, or one task, down.
    def __init__(self, observers: list[Observer]) -> None:
        self._observers = observers
        self._targets: dict[str, list[tuple[Observer, Callable[..., None]]]] = {}
        for name in _EVENTS:
            targets = [(o, getattr(o, name)) for o in observers if _overrides(o, name)]
            self._targets[name] = targets
            setattr(self, name, self._fan(name, targets))

    def _fan(
        self, name: str, targets: list[tuple[Observer, Callable[..., None]]]
    ) -> Callable[..., None]:
        def fan(*args: Any) -> None:
            for observer, target in targets:
                try:
                    target(*args)
                except Exception:
                    self._disable(observer, name)

        return fan

    def _disable(self, observer: Observer, name: str) -> None:
        log.exception(
            "observer %r raised in %s(); it is switched off for the rest of this run",
            observer,
            name,
        )
        for targets in self._targets.values():
            targets[:] = [(o, t) for o, t in targets if o is not observer]
        self._observers = [o for o in self._observers if o is not observer]


_EVENTS = [name for name in vars(Observer) if not name.startswith("_")]


def combine(*observers: Observer | None) -> Observer | None:
    """One observer telling every given one about each event; None when none is given.

    Each observer is contained: one that raises is logged once and switched off.
    """
    present = [observer for observer in observers if observer is not None]
    if not present:
        return None
    return _Fanout(present)


def wants_calls(observer: Observer) -> bool:
    """Whether *observer* listens to :meth:`Observer.call_finished` (worth timing each call)."""
    return listens(observer, "call_finished")


def listens(observer: Observer, event: str) -> bool:
    """Whether *observer* (or one it fans out to) overrides the method of *event*."""
    if isinstance(observer, _Fanout):
        return any(listens(o, event) for o in observer._observers)
    return _overrides(observer, event)


class ObservedConnection:
    """A connection whose coroutine methods tell an observer how each call went.

    Wraps any service's connection without knowing its methods: every public coroutine method
    is timed; other attributes pass through. A call repeated with the same first argument after a
    transient failure (the retry layer's next attempt) is flagged as a retry.
    """

    def __init__(self, inner: object, observer: Observer) -> None:
        self._inner = inner
        self._observer = observer
        self._failed: set[tuple[str, int]] = set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        wrapped = self._wrap(name, value)
        setattr(self, name, wrapped)  # cached: __getattr__ runs once per method
        return wrapped

    def _wrap(
        self, operation: str, method: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        observer = self._observer
        failed = self._failed
        clock = time.monotonic

        async def observed(*args: Any, **kwargs: Any) -> Any:
            key = (operation, id(args[0]) if args else 0)
            retry = bool(failed) and key in failed
            start = clock()
            try:
                result = await method(*args, **kwargs)
            except TransientServiceError as exc:
                if len(failed) > 1000:  # calls that were never repeated; forget them
                    failed.clear()
                failed.add(key)
                observer.call_finished(operation, exc, clock() - start, retry)
                raise
            except Exception as exc:
                failed.discard(key)
                observer.call_finished(operation, exc, clock() - start, retry)
                raise
            if retry:
                failed.discard(key)
            observer.call_finished(operation, None, clock() - start, retry)
            return result

        return observed


def observe_connection(connection: Any, observer: Observer) -> Any:
    """*connection* itself, or wrapped in :class:`ObservedConnection` if *observer* wants calls."""
    if wants_calls(observer):
        return cast(Any, ObservedConnection(connection, observer))
    return connection
