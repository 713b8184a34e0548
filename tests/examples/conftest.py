"""The examples run from the repository root, with fake credentials and a clean logger."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import fake_aws_environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    none = str(tmp_path / "none")
    fake_aws_environment(monkeypatch, config_file=none, credentials_file=none)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "path", list(sys.path))
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    # Each test imports the examples afresh: their workers hold registrations.
    for name in [name for name in sys.modules if name.startswith("examples")]:
        del sys.modules[name]
    root.handlers[:] = handlers
    root.setLevel(level)
