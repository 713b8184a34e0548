"""Fixtures for the reliability suite: fake credentials and a summary of the counts.

Every test here talks to 127.0.0.1 only and is bounded in time. Tests that want their numbers in
the output call :func:`report`; the lines are printed in pytest's terminal summary (no ``-s``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import fake_aws_environment

FAKE_ACCESS_KEY = "AKIAFAKEFAKEFAKEFAKE"
FAKE_SECRET_KEY = "fAkE/sEcReT+kEy/0123456789abcdefFAKEFAKE"

_REPORTS: list[str] = []


def report(line: str) -> None:
    """Add *line* to the reliability summary printed at the end of the run."""
    _REPORTS.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORTS:
        terminalreporter.section("reliability counts")
        for line in _REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Recognisable keys, so that the secrets tests can look for them in the logs.
    fake_aws_environment(monkeypatch, access_key=FAKE_ACCESS_KEY, secret_key=FAKE_SECRET_KEY)


# ``no_backoff`` (not autouse here: only tests whose faults would make them wait ask for it),
# ``service``, ``make_service`` and ``dp`` are the shared fixtures of ``tests/conftest.py``.


@pytest.fixture
def make_worker() -> Any:
    """``make_worker(**settings)``: a Data Pipeline worker with short intervals (not the poll
    hold, which is the service's) and fake credentials; give it ``endpoint_url``."""
    from pipeworker import Worker

    def make(cls: type[Worker] = Worker, **settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "region": "us-east-1",
            "progress_interval": 0.2,
            "heartbeat_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return cls(**{**defaults, **settings})

    return make
