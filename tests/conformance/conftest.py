"""Fixtures of the conformance suite: a local service in its own thread, for plain boto3."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeworker.local import LocalConfig
from tests.conformance.harness import ServiceThread
from tests.helpers import fake_aws_environment


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_environment(monkeypatch)


@pytest.fixture(scope="module")
def service_thread() -> Iterator[ServiceThread]:
    """One local service for the module: its polls hold 0.2 s, its durations run x0.01.

    The suite is about definitions, not polling; a short hold keeps a drive through every worker
    group quick. Schedules fire (a 15-minute period every 9 s); of a schedule that started years
    ago only the latest past run is backfilled, and the suite drives that first run.
    """
    config = LocalConfig(poll_hold=0.2, ack_timeout=30.0, time_scale=0.01, backfill_limit=1)
    with ServiceThread(config) as running:
        yield running
