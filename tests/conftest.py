"""Fixtures shared by the suites; none applies by itself.

A directory opts in from its own ``conftest.py`` (``fake_credentials`` and ``no_backoff`` are
usually made autouse there), and overrides a fixture where its tests need something else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from pipeworker import _retry
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import FAST, client_config, fake_aws_environment


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials and region; the machine's AWS settings are not read."""
    fake_aws_environment(monkeypatch)


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Retries without backoff, for tests whose faults would otherwise make them wait."""
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """A running local service with :data:`~tests.helpers.FAST` time rules."""
    async with LocalService(FAST) as running:
        yield running


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Awaitable[LocalService]]]:
    """``await make_service(**rules)``: another running local service, FAST's rules overridden."""
    started: list[LocalService] = []

    async def make(**rules: Any) -> LocalService:
        settings = {
            "poll_hold": FAST.poll_hold,
            "ack_timeout": FAST.ack_timeout,
            "time_scale": FAST.time_scale,
            **rules,
        }
        running = LocalService(LocalConfig(**settings))
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore Data Pipeline client for the local service (no retries)."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=client_config(),
    ) as client:
        yield client
