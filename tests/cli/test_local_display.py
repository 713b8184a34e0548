"""What ``--local`` shows: plain lines when piped, a rich live display on a terminal.

The piped run is a real subprocess whose stdout is a pipe, as in CI logs or ``| tee``. The terminal
run is in-process with stdout and stderr replaced by one terminal-like stream, as a user's terminal
has them, so the log handler and the live display must share it without gluing lines together.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from pipeworker import _display
from pipeworker.cli import main

REPO = Path(__file__).resolve().parents[2]
ORDER = ["Fetch", "GreetEurope", "GreetAmericas", "Report"]


def _summary_rows(text: str) -> list[tuple[str, str, str]]:
    """(activity, status, seconds) of the summary table, plain or rich, in printed order."""
    rows = []
    for line in text.splitlines():
        cells = [cell for cell in re.split(r"[│ ]{2,}|│", line.strip(" │")) if cell.strip()]
        if len(cells) >= 3 and cells[0].strip() in ORDER and cells[1].strip() == "FINISHED":
            rows.append((cells[0].strip(), cells[1].strip(), cells[2].strip()))
    return rows


def _check_summary(text: str) -> None:
    rows = _summary_rows(text)
    names = [name for name, _, _ in rows]
    # Execution order: Fetch first, Report last (the two greetings start together).
    assert names[0] == "Fetch", rows
    assert names[-1] == "Report", rows
    assert sorted(names) == sorted(ORDER), rows
    seconds = {name: value for name, _, value in rows}
    for name in ORDER:
        assert re.fullmatch(r"\d+\.\d", seconds[name]), rows  # tenths, not whole seconds
    # Each greeting sleeps 0.2 s and Fetch 3 x 0.1 s: the table says so, not 0.0 or 1.0.
    assert 0.2 <= float(seconds["GreetEurope"]) < 1.0, rows
    assert 0.3 <= float(seconds["Fetch"]) < 1.5, rows


def test_piped_output_is_plain_lines(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "TERM": "xterm-256color",  # a terminal type, but stdout is a pipe: still plain
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeworker", "examples.hello:worker", "--local"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b" not in out
    assert "\r" not in out
    progress = [line for line in out.splitlines() if "tasks:" in line]
    assert progress[-1].endswith("tasks: 0 waiting, 0 running, 4 finished, 0 failed")
    assert len(progress) == len(set(progress))  # a line per change, not per refresh
    assert _display.INSTALL_HINT not in out
    _check_summary(out)
    assert "pipeline finished in" in out
    assert "fetched 3 items" in done.stderr


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_display_owns_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "160")
    terminal = _Terminal()
    # One terminal for both streams, as a user's shell has it.
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr("sys.stderr", terminal)
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        assert main(["examples.hello:worker", "--local"]) == 0
    finally:
        root.handlers[:] = handlers
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # colours, cursor moves
    assert "━" in text  # the bars
    for state in ("waiting", "running", "finished", "failed"):
        assert re.search(rf"{state}\s+━+\s+\d/4", text), state
    assert "┏" in text
    assert "activities, in the order they started" in text
    _check_summary(text)
    # The log lines came through the display's handler: whole lines, never glued to a bar.
    greetings = [line for line in text.splitlines() if "Hello, Europe!" in line]
    assert greetings, text[-2000:]
    for line in greetings:
        assert "━" not in line
        assert "tasks:" not in line
        assert "INFO" in line
        assert "pipeworker.task: Hello, Europe!" in line
    # Nothing of the plain path.
    assert "tasks: 0 waiting" not in text
    # And the handlers are the CLI's own again afterwards.
    assert not any(type(h).__name__ == "RichHandler" for h in root.handlers)


def test_without_rich_a_terminal_gets_plain_lines_and_one_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)  # as if rich were not installed
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = _Terminal()
    display = _display.open_display(terminal)
    assert type(display) is _display.Display
    rows = [_display.Row("i1", "A", "RUNNING"), _display.Row("i2", "B", "WAITING_FOR_RUNNER")]
    display.progress(rows, 0.5)
    display.progress(rows, 0.7)  # unchanged: no second line
    rows[0].status = "FINISHED"
    display.progress(rows, 0.9)
    lines = terminal.getvalue().splitlines()
    assert lines[0] == _display.INSTALL_HINT
    assert lines[1:] == [
        "[  0.5s] tasks: 1 waiting, 1 running, 0 finished, 0 failed",
        "[  0.9s] tasks: 1 waiting, 0 running, 1 finished, 0 failed",
    ]


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert type(_display.open_display(_Terminal())) is _display.Display


def test_the_summary_of_rows_never_run_comes_last_with_no_seconds() -> None:
    clock = _display.ActivityClock()
    clock.started.update({"b": 1.0, "a": 2.0})
    clock.ended.update({"b": 1.25, "a": 2.5})
    rows = [
        _display.Row("c", "C", "CASCADE_FAILED"),
        _display.Row("a", "A", "FINISHED"),
        _display.Row("b", "B", "FAILED", error="boom"),
    ]
    out = StringIO()
    _display.Display(out).summary(rows, 3.0, clock)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["B", "A", "C"]
    assert lines[2].split()[2] == "0.2"  # 0.25 s to a tenth
    assert lines[3].split()[2] == "0.5"
    assert lines[4].split()[2] == "-"
    assert lines[-1] == "pipeline failed in 3.0s: 1 finished, 2 failed, 0 not run"


def test_a_reader_gone_never_stops_a_run(tmp_path: Path) -> None:
    """``--local --keep-running | head -3``: the pipe closes, and SIGINT still stops the run."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "pipeworker", "examples.hello:worker", "--local", "--keep-running"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        for line in process.stderr:  # the log: wait until the last task has ended
            if "everyone was greeted" in line:
                break
        process.stdout.close()  # the reader goes; every later line meets a closed pipe
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_the_rich_display_keeps_the_line_to_copy_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("rich")
    monkeypatch.setenv("COLUMNS", "80")
    terminal = _Terminal()
    display = _display.open_display(terminal, rich=True)
    assert type(display) is not _display.Display
    banner = _display.keep_running_banner("http://127.0.0.1:40123", "eu-west-1")
    for line in banner:
        display.say(line)
    export = banner[2]
    assert len(export) > 80
    assert export in terminal.getvalue().splitlines()  # not broken at the terminal's width
