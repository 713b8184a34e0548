"""The fast unit layer: a real worker against ``pipeworker.testing.FakeDataPipeline``.

Only the HTTP request is replaced (``MockTransport``): the service's wire translation and error
table, retries, the supervisor and the task scopes are the real ones. The environment has no AWS
credentials at all, so a test that reached for them (or for botocore's clients) would fail to
start. Retries run without backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeworker import DataPipeline, Worker, _retry
from pipeworker.testing import FakeDataPipeline


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
def fake() -> FakeDataPipeline:
    """An in-memory Data Pipeline with the service's real 90 s poll hold."""
    return FakeDataPipeline()


@pytest.fixture
def make_worker(fake: FakeDataPipeline) -> Callable[..., Worker]:
    """``make_worker(cls=Worker, lease=300, **settings)``: a worker on *fake*, unpaced."""

    def make(cls: type[Worker] = Worker, *, lease: float = 300.0, **settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": DataPipeline(transport=fake.transport, lease=lease),
            "rate_limits": None,
            "progress_interval": 60.0,
            "heartbeat_interval": 900.0,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return cls(**{**defaults, **settings})

    return make
