"""The one retry layer: every service call that is retried goes through :func:`call`.

botocore's own retries are switched off in the service modules, so a request is never multiplied
by two layers. Only :class:`~pipeworker.exceptions.TransientServiceError` (5xx, throttling,
timeouts, dropped connections) is retried, with exponential backoff and full jitter; request
errors (4xx), lost leases and cancellation propagate at once. There are no wall-clock stop
conditions: callers bound a call with asyncio timeouts or cancellation, which also works under a
fake clock.

:func:`set_testing` removes the backoff so tests that inject faults do not sleep.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from pipeworker.exceptions import TransientServiceError

__all__ = [
    "EVALUATE",
    "HEARTBEAT",
    "POLL",
    "PROGRESS",
    "STATUS",
    "Policy",
    "call",
    "pause",
    "set_testing",
]

log = logging.getLogger("pipeworker.retry")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Policy:
    """How one kind of call is retried.

    Attributes:
        name: for log messages.
        attempts: the most attempts, or None to retry until the call lands or is cancelled.
        initial: the first backoff's upper bound, in seconds (full jitter: 0..initial).
        maximum: the largest backoff, in seconds.
    """

    name: str
    attempts: int | None
    initial: float = 0.5
    maximum: float = 30.0


# Polls and final statuses retry without end: a poller has nothing better to do, and a lost
# FINISHED is lost work. Progress and heartbeats give up after a few tries because the next
# scheduled report is itself the retry; evaluate() gives the handler an answer in bounded time.
POLL = Policy("poll", attempts=None, initial=1.0, maximum=30.0)
STATUS = Policy("status", attempts=None, initial=0.5, maximum=30.0)
PROGRESS = Policy("progress", attempts=4, initial=0.5, maximum=8.0)
HEARTBEAT = Policy("heartbeat", attempts=3, initial=1.0, maximum=10.0)
EVALUATE = Policy("evaluate", attempts=4, initial=0.5, maximum=8.0)

_testing = False


def set_testing(enabled: bool) -> None:
    """Switch backoff off (True) or back on (False); for tests that inject failures."""
    global _testing
    _testing = enabled


class _wait_policy(wait_base):
    # Reads the testing switch at each wait, so set_testing() also affects policies in use.
    # Attempt numbers are offset by one: tenacity only sees the retries (see call()).
    def __init__(self, policy: Policy) -> None:
        self._jittered = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def after(self, attempt: int) -> float:
        """The backoff after the *attempt*-th failed attempt (1-based)."""
        if _testing:
            return 0.0
        return self._jittered(cast(RetryCallState, _Attempt(attempt)))

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.after(retry_state.attempt_number + 1)


@dataclass(frozen=True, slots=True)
class _Attempt:
    attempt_number: int


@functools.cache
def _wait_for(policy: Policy) -> _wait_policy:
    return _wait_policy(policy)


async def _interruptible_sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
    elif stop is None:
        await asyncio.sleep(seconds)
    else:
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            pass


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Wait *seconds* (none while testing), returning early once *stop* is set."""
    await _interruptible_sleep(0.0 if _testing else seconds, stop)


async def call(
    policy: Policy,
    fn: Callable[[], Awaitable[T]],
    *,
    stop: asyncio.Event | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Await ``fn()``, retrying transient failures according to *policy*.

    Args:
        policy: how often and how patiently to retry.
        fn: makes one attempt; called again for every retry.
        stop: when set, ends the retrying (during a backoff or before the next attempt) and
            re-raises the last error; used so a shutdown does not wait out a backoff.
        on_retry: told about every failure that will be retried (for logs and metrics).

    Returns:
        What the first successful attempt returned.

    Raises:
        TransientServiceError: the attempts ran out, or *stop* was set; the last error.
        ServiceError: any other service error, at once.
        asyncio.CancelledError: never swallowed and never retried.
    """
    # Most calls succeed at once: make the first attempt without building tenacity's machinery
    # (about 25 µs a call), and hand only the retries to tenacity.
    try:
        return await fn()
    except TransientServiceError as exc:
        if policy.attempts == 1 or (stop is not None and stop.is_set()):
            raise
        first = exc
    log.debug("%s failed (%s), attempt 1; retrying", policy.name, first)
    if on_retry is not None:
        on_retry(first)
    await _interruptible_sleep(_wait_for(policy).after(1), stop)
    if stop is not None and stop.is_set():
        raise first

    stop_rule: stop_base = (
        stop_never if policy.attempts is None else stop_after_attempt(policy.attempts - 1)
    )
    failures: list[BaseException] = [first]
    if stop is not None:
        event = stop
        stop_rule = stop_rule | _StopOnEvent(event)

    # Always a coroutine function: tenacity runs anything else as a sync callable, and would
    # hand back the un-awaited coroutine that a lambda returns.
    async def attempt() -> T:
        # tenacity sleeps, then attempts, then checks the stop rule: a stop set during the
        # backoff must not cause one more request (a poll after a stop).
        if stop is not None and stop.is_set():
            raise failures[-1]
        try:
            return await fn()
        except TransientServiceError as exc:
            failures[:] = [exc]
            raise

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            log.debug(
                "%s failed (%s), attempt %d; retrying",
                policy.name,
                error,
                state.attempt_number + 1,
            )
            if on_retry is not None:
                on_retry(error)

    async def sleep(seconds: float) -> None:
        await _interruptible_sleep(seconds, stop)

    retrying = AsyncRetrying(
        # An exact type predicate: CancelledError (a BaseException) never matches it.
        retry=retry_if_exception_type(TransientServiceError),
        stop=stop_rule,
        wait=_wait_for(policy),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)


class _StopOnEvent(stop_base):
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()
