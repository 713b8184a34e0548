"""Fixtures for the command-line tests: apps written to a temporary directory, a clean logger."""

from __future__ import annotations

import itertools
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import fake_aws_environment

_names = itertools.count()

APP = """
from pipeworker import Task, Worker

worker = Worker(region="us-east-1")

@worker.activity("wg-test")
async def handle(task: Task) -> None:
    pass

@worker.activity("wg-test", type="ShellCommandActivity")
def shell(task: Task) -> None:
    pass
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, no PIPEWORKER_* from the outside, sys.path/modules and logging restored."""
    for name in list(__import__("os").environ):
        if name.startswith("PIPEWORKER_"):
            monkeypatch.delenv(name)
    fake_aws_environment(
        monkeypatch,
        config_file=str(tmp_path / "no-aws-config"),
        credentials_file=str(tmp_path / "no-aws-credentials"),
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for name in set(sys.modules) - modules:
        if name.startswith("app_") or name.startswith("examples"):
            del sys.modules[name]
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def write_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Write a module into a temporary directory made current; return its unique name."""
    monkeypatch.chdir(tmp_path)

    def write(source: str = APP, *, name: str | None = None) -> str:
        module = name or f"app_{next(_names)}"
        path = tmp_path / f"{module.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return module

    return write
