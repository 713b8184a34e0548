"""Fixtures for the SWF tests: the local service's SWF subset, clients and workers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiobotocore.session import get_session

from pipeworker import SWF, Worker
from pipeworker.local import LocalService
from tests.helpers import client_config, eventually

__all__ = ["DOMAIN", "TASK_LIST", "eventually", "settled", "task_of"]

DOMAIN = "orders"
TASK_LIST = "orders-tasks"


@pytest.fixture(autouse=True)
def _isolated(fake_credentials: None, no_backoff: None) -> None:
    """Fake AWS credentials and retries without backoff; ``service`` is the shared one."""


@pytest.fixture
async def swf(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore SWF client for the local service (no retries)."""
    async with get_session().create_client(
        "swf", region_name="us-east-1", endpoint_url=service.endpoint_url, config=client_config()
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


@pytest.fixture(params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports of the SWF service: every worker test runs on each."""
    return str(request.param)


@pytest.fixture
def make_worker(service: LocalService, transport: str) -> Callable[..., Worker]:
    """``make_worker(**settings)``: an SWF worker for the local service, short intervals, on
    the transport under test unless a service is given."""

    def make(**settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": SWF(domain=DOMAIN, transport=transport),  # type: ignore[arg-type]
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return Worker(**{**defaults, **settings})

    return make


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
