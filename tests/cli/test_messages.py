"""What a new user reads: errors at import name their own line once, counts agree in number."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeworker.testing import run_handler

REPO = Path(__file__).resolve().parents[2]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def test_a_configuration_error_at_import_shows_the_users_line_and_the_message_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "badapp.py").write_text(
        "from pipeworker import Worker\n"
        "worker = Worker()\n"
        "@worker.activity('bad\\x01group')\n"
        "async def handle(task):\n"
        "    pass\n"
    )
    done = _cli(tmp_path, "pipeworker", "badapp:worker", "--check")
    assert done.returncode == 2
    err = done.stderr
    assert f'File "{tmp_path / "badapp.py"}", line 3, in <module>' in err
    assert "@worker.activity('bad\\x01group')" in err
    assert "pipeworker/worker.py" not in err  # where the check lives is not the user's concern
    assert err.count("invalid worker group") == 1
    assert (
        err.rstrip()
        .splitlines()[-1]
        .startswith(
            "pipeworker: error: importing 'badapp' raised ConfigurationError: activity handle: "
            "invalid worker group"
        )
    )


def test_an_exception_at_import_is_said_once_after_the_users_frames(tmp_path: Path) -> None:
    # The message is built, so that the source line shown does not repeat it.
    (tmp_path / "boom.py").write_text("x = 1\nraise RuntimeError('boom' + ' at import')\n")
    done = _cli(tmp_path, "pipeworker", "boom:worker")
    assert done.returncode == 2
    assert "line 2, in <module>" in done.stderr
    assert done.stderr.count("boom at import") == 1


def test_local_help_shows_defaults_and_every_service() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeworker.local", "--help"],
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps at the terminal's width
    assert "Amazon SWF" in text
    assert "AWS Step Functions" in text
    for default in (
        "interface to bind (default: 127.0.0.1)",
        "(default: 8080)",
        "(default: 90.0)",
        "(default: 120.0)",
        "(default: 900.0)",
        "(default: WARNING)",
    ):
        assert default in text, default
    assert "(default: None)" not in text
    assert "aws datapipeline list-pipelines" in text


@pytest.mark.parametrize(("items", "said"), [("1", "fetched 1 item"), ("3", "fetched 3 items")])
async def test_the_demo_counts_items_in_number(
    items: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    sys.path.insert(0, str(REPO))
    try:
        from examples.hello import hello
    finally:
        sys.path.remove(str(REPO))
    with caplog.at_level(logging.INFO, logger="pipeworker.task"):
        result = await run_handler(hello, fields={"step": "fetch", "items": items})
    assert result.status == "FINISHED"
    messages = [record.getMessage() for record in caplog.records]
    assert said in messages, messages
