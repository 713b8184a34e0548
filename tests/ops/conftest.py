"""Fixtures for the operations tests: a local service, workers pointed at it, a scraper.

Self-contained (the worker suite's fixtures are parametrized for its own purposes); the
pipeline helpers come from ``tests.worker.conftest``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from pipeworker import Worker, _retry
from pipeworker.local import LocalConfig, LocalService

FAST = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Awaitable[LocalService]]]:
    """``await make_service()``: a local service with short time rules, stopped after the test."""
    started: list[LocalService] = []

    async def make() -> LocalService:
        running = LocalService(FAST)
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
async def service(make_service: Callable[..., Awaitable[LocalService]]) -> LocalService:
    return await make_service()


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore client for creating pipelines and inspecting them (no retries)."""
    config = Config(retries={"total_max_attempts": 1}, read_timeout=10)
    async with get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url, config=config
    ) as client:
        yield client


@pytest.fixture
def make_worker(service: LocalService) -> Callable[..., Worker]:
    """``make_worker(**settings)``: a worker for the local service, short intervals."""

    def make(**settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.1,
            "heartbeat_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return Worker(**{**defaults, **settings})

    return make


async def get(url: str) -> tuple[int, Any]:
    """GET *url* with a real HTTP client; JSON bodies are decoded, others returned as text."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def scrape(url: str) -> Samples:
    """The samples of ``url`` (a /metrics endpoint), by (name, sorted labels)."""
    status, text = await get(url)
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
