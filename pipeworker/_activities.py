"""What is registered: activities (a queue, an optional type, a handler) and the decorator.

``@worker.activity(queue)`` on an instance registers at once; ``@Worker.activity(queue)`` in a
subclass's body only marks the method, and each instance registers its bound methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from pipeworker.task import BaseTask

if TYPE_CHECKING:
    from pipeworker.worker import Worker

__all__ = ["MARK", "Activity", "ActivityDecorator", "Handler", "is_async"]

Handler = Callable[[Any], Awaitable[Any]] | Callable[[Any], Any]
"""A handler: ``async def handle(task)`` or a plain ``def`` (run in a thread).

What it returns is the task's result where the service has one (SWF); Data Pipeline ignores it."""

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T", bound=BaseTask)

MARK = "__pipeworker_activities__"


@dataclass(frozen=True, slots=True)
class Activity:
    """One registered handler.

    Attributes:
        queue: what is polled for it (the worker group).
        type: the activity type it is limited to, or None for every type on the queue.
        handler: the function (or bound method) that runs the task.
        is_async: True for coroutine functions; plain functions run in a thread.
        name: the handler's qualified name, for messages.
    """

    queue: str
    type: str | None
    handler: Handler
    is_async: bool
    name: str


def is_async(handler: Callable[..., Any]) -> bool:
    """Whether *handler* runs on the loop (coroutine functions, async callables, and async
    functions behind ``functools.wraps``) rather than in a thread.

    A plain function that returns an awaitable anyway has it awaited on the loop.
    """
    return any(
        inspect.iscoroutinefunction(candidate)
        for candidate in (
            handler,
            getattr(handler, "__call__", None),  # noqa: B004 (async callable objects)
            inspect.unwrap(handler) if inspect.isfunction(handler) else None,
        )
    )


R = TypeVar("R")


class _Register(Protocol[T]):
    # A handler must accept the worker's task class: one typed for another service's task is a
    # type error here (and a ConfigurationError at registration).
    def __call__(self, handler: Callable[[T], R], /) -> Callable[[T], R]: ...


class _Decorate(Protocol[T]):
    def __call__(self, queue: str, /, *, type: str | None = None) -> _Register[T]: ...


class _Mark(Protocol):
    def __call__(self, queue: str, /, *, type: str | None = None) -> Callable[[F], F]: ...


class ActivityDecorator:
    """``worker.activity(...)`` registers a function; ``Worker.activity(...)`` marks a method.

    On an instance it validates and registers at once. Used in a subclass's body it only marks
    the method; each instance of the subclass registers its bound methods when it is created.
    """

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _Mark: ...
    @overload
    def __get__(self, instance: Worker[T], owner: type[Any]) -> _Decorate[T]: ...
    def __get__(self, instance: Worker[T] | None, owner: type[Any]) -> _Mark | _Decorate[T]:
        if instance is None:
            return _mark
        return instance._decorator


def _mark(queue: str, /, *, type: str | None = None) -> Callable[[F], F]:
    def mark(method: F) -> F:
        marks: list[tuple[str, str | None]] = list(getattr(method, MARK, ()))
        marks.append((queue, type))
        setattr(method, MARK, tuple(marks))
        return method

    return mark
