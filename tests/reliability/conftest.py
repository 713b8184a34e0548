"""Fixtures for the reliability suite: fake credentials, no backoff, a summary of the counts.

Every test here talks to 127.0.0.1 only and is bounded in time. Tests that want their numbers in
the output call :func:`report`; the lines are printed in pytest's terminal summary (no ``-s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeworker import _retry

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
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Retries without backoff, for tests whose faults would otherwise make them wait."""
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)
