"""The one retry layer: what it retries, what it never retries, and how it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from pipeworker import (
    LeaseLost,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
    _retry,
)


class Flaky:
    """Fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


async def test_transient_errors_and_throttles_are_retried_until_success() -> None:
    flaky = Flaky(TransientServiceError("500"), ThrottlingError("slow down"))
    assert await _retry.call(_retry.STATUS, flaky) == "ok"
    assert flaky.calls == 3


async def test_bounded_policies_give_up_with_the_last_error() -> None:
    flaky = Flaky(*(TransientServiceError(f"500 #{n}") for n in range(10)))
    with pytest.raises(TransientServiceError, match="500 #3"):
        await _retry.call(_retry.PROGRESS, flaky)
    assert flaky.calls == _retry.PROGRESS.attempts


@pytest.mark.parametrize("error", [RequestRejected("400"), LeaseLost("gone"), ValueError("bug")])
async def test_request_errors_and_lost_leases_are_never_retried(error: Exception) -> None:
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        await _retry.call(_retry.STATUS, flaky)
    assert flaky.calls == 1


async def test_cancellation_is_never_retried() -> None:
    flaky = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await _retry.call(_retry.STATUS, flaky)
    assert flaky.calls == 1


async def test_cancelling_during_a_backoff_ends_the_call() -> None:
    _retry.set_testing(False)
    flaky = Flaky(*(TransientServiceError("500") for _ in range(100)))
    slow = _retry.Policy("slow", attempts=None, initial=100.0, maximum=100.0)
    call = asyncio.create_task(_retry.call(slow, flaky))
    await asyncio.sleep(0.05)
    calls = flaky.calls
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 1.0)
    assert flaky.calls == calls


async def test_a_stop_event_ends_an_endless_policy_with_the_last_error() -> None:
    _retry.set_testing(False)
    stop = asyncio.Event()
    flaky = Flaky(*(TransientServiceError("500") for _ in range(100)))
    slow = _retry.Policy("slow", attempts=None, initial=100.0, maximum=100.0)
    call = asyncio.create_task(_retry.call(slow, flaky, stop=stop))
    await asyncio.sleep(0.05)
    calls = flaky.calls
    stop.set()
    with pytest.raises(TransientServiceError):
        await asyncio.wait_for(call, 1.0)  # the backoff (up to 100 s) is cut short
    assert flaky.calls == calls


async def test_backoff_is_jittered_exponential_and_capped() -> None:
    _retry.set_testing(False)
    wait = _retry._wait_for(_retry.STATUS)
    state = type("State", (), {"attempt_number": 30})()
    samples = [wait(state) for _ in range(200)]  # type: ignore[arg-type]
    assert max(samples) <= _retry.STATUS.maximum
    assert len(set(samples)) > 100  # jittered, not a fixed schedule
    _retry.set_testing(True)
    assert wait(state) == 0.0  # type: ignore[arg-type]


async def test_on_retry_sees_every_retried_failure() -> None:
    seen: list[BaseException] = []
    flaky = Flaky(TransientServiceError("a"), TransientServiceError("b"))
    await _retry.call(_retry.STATUS, flaky, on_retry=seen.append)
    assert [str(error) for error in seen] == ["a", "b"]
