"""Fixtures for the operations tests: workers pointed at the local service, a scraper.

The service, ``make_service``, the ``dp`` client and the pipeline helpers are the shared ones
(``tests/conftest.py``, ``tests/helpers.py``); ``make_worker`` is its own (not parametrized by
transport, progress every 0.1 s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeworker import Worker
from pipeworker.local import LocalService

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _isolated(fake_credentials: None, no_backoff: None) -> None:
    """Fake AWS credentials and retries without backoff (``tests/conftest.py``)."""


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
