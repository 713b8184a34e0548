"""Fixtures for the worker's tests: the local service, a client, and workers pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import DataPipeline, Worker
from pipeworker.local import LocalService

# The pipeline helpers moved to tests/helpers.py; importing them from here still works.
from tests.helpers import *  # noqa: F403


@pytest.fixture(autouse=True)
def _isolated(fake_credentials: None, no_backoff: None) -> None:
    """Fake AWS credentials and retries without backoff (``tests/conftest.py``); the local
    service, ``make_service`` and the ``dp`` client come from there too, with FAST's rules."""


@pytest.fixture(params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports of the Data Pipeline service: every worker test runs on each."""
    return str(request.param)


@pytest.fixture
def make_worker(service: LocalService, transport: str) -> Callable[..., Worker]:
    """``make_worker(cls=Worker, **settings)``: a worker for the local service, short intervals,
    on the transport under test unless a service is given."""

    def make(cls: type[Worker] = Worker, **settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": DataPipeline(transport=transport),  # type: ignore[arg-type]
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.2,
            "heartbeat_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return cls(**{**defaults, **settings})

    return make
