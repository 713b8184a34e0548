"""Fixtures for the SWF tests: the local service's SWF subset, clients and workers pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker import SWF, Worker, _retry
from pipeworker.local import LocalConfig, LocalService

DOMAIN = "orders"
TASK_LIST = "orders-tasks"
FAST = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """The local service with a 0.3 s poll hold."""
    async with LocalService(FAST) as running:
        yield running


@pytest.fixture
async def swf(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore SWF client for the local service (no retries)."""
    config = Config(retries={"total_max_attempts": 1}, read_timeout=10)
    async with get_session().create_client(
        "swf", region_name="us-east-1", endpoint_url=service.endpoint_url, config=config
    ) as client:
        yield client


@pytest.fixture
def register(swf: Any) -> Callable[..., Awaitable[None]]:
    """``await register(name, heartbeat="NONE", version="1")``: the domain (once) and a type."""
    domains: set[str] = set()

    async def make(name: str, heartbeat: str = "NONE", version: str = "1") -> None:
        if DOMAIN not in domains:
            await swf.register_domain(name=DOMAIN, workflowExecutionRetentionPeriodInDays="1")
            domains.add(DOMAIN)
        await swf.register_activity_type(
            domain=DOMAIN,
            name=name,
            version=version,
            defaultTaskList={"name": TASK_LIST},
            defaultTaskHeartbeatTimeout=heartbeat,
        )

    return make


@pytest.fixture
def make_worker(service: LocalService) -> Callable[..., Worker]:
    """``make_worker(**settings)``: an SWF worker for the local service, short intervals."""

    def make(**settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": SWF(domain=DOMAIN),
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return Worker(**{**defaults, **settings})

    return make


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], within: float = 10.0
) -> None:
    """Wait until *check* is true, polling every 20 ms; fail after *within* seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


def task_of(service: LocalService, activity_id: str) -> dict[str, Any]:
    """The local service's record of one activity task."""
    (found,) = [t for t in service.swf_task_history() if t["activityId"] == activity_id]
    return found


def settled(service: LocalService, *activity_ids: str) -> Callable[[], bool]:
    """A check: every task named has left SCHEDULED/STARTED."""

    def check() -> bool:
        return all(
            task_of(service, a)["status"] not in ("SCHEDULED", "STARTED") for a in activity_ids
        )

    return check
