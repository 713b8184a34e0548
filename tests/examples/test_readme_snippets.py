"""The README's snippets, saved as a user would save them and run as the README says.

The complete worker is saved as ``app.py`` and checked through the real CLI (``--check`` must not
start it); the testing section is saved as ``test_app.py`` beside it and run by pytest in a
subprocess, as a user's own suite would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()

pytestmark = pytest.mark.timeout(120)


def python_block(after: str) -> str:
    """The first python block after the heading *after*."""
    section = README[README.index(after) :]
    block = section[section.index("```python\n") + len("```python\n") :]
    return block[: block.index("```")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=100
    )


def test_the_complete_worker_is_checked_by_the_cli_without_starting(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(python_block("## A complete worker"))
    done = _run(["-m", "pipeworker", "app:worker", "--check", "--region", "us-east-1"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wg-12345" in done.stdout
    assert "OK: 1 activity" in done.stdout
    assert "polling" not in done.stderr  # it did not start


def test_the_testing_section_passes_against_the_complete_worker(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(python_block("## A complete worker"))
    (tmp_path / "test_app.py").write_text(python_block("## Testing your handlers"))
    done = _run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "test_app.py"],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
