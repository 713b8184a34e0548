"""Running a command the way the Java Task Runner does: in its own process group, output to files.

The command gets a new session (and so its own process group), so a cancel, a lost lease or the
runner's shutdown can signal everything it started, not just the shell: SIGTERM to the group,
then SIGKILL if anything is left after :data:`KILL_AFTER` seconds. Its output goes straight to
files (no pipe through the runner), so a chatty command costs the runner no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KILL_AFTER", "Command", "describe_exit", "run_command", "tail"]

KILL_AFTER = 5.0
"""Seconds a cancelled command's process group gets between SIGTERM and SIGKILL."""


@dataclass(frozen=True)
class Command:
    """What to run.

    Attributes:
        argv: the program and its arguments.
        cwd: the working directory.
        env: the complete environment.
        stdout: the file the command's standard output goes to.
        stderr: the file its standard error goes to.
    """

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    stdout: Path
    stderr: Path


async def run_command(command: Command, kill_after: float = KILL_AFTER) -> int:
    """Run *command* to its end and return its exit status (negative: killed by that signal).

    Cancelling the caller terminates the command's whole process group before re-raising.

    Raises:
        OSError: the program cannot be started (not found, not executable).
    """
    with command.stdout.open("ab") as out, command.stderr.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            cwd=command.cwd,
            env=dict(command.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        return await process.wait()
    except asyncio.CancelledError:
        await asyncio.shield(_kill_group(process, kill_after))
        raise


async def _kill_group(process: asyncio.subprocess.Process, kill_after: float) -> None:
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), kill_after)
    _signal_group(process.pid, signal.SIGKILL)
    if process.returncode is None:
        await process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def describe_exit(status: int) -> tuple[str, str]:
    """The errorId and a phrase for exit *status*: ``("ExitCode3", "exited with code 3")``."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"SIG{-status}"
        return f"KilledBy{name}", f"was killed by {name}"
    return f"ExitCode{status}", f"exited with code {status}"


def tail(path: Path, limit: int = 512) -> str:
    """The last *limit* bytes of *path* as text (empty when the file is missing)."""
    try:
        with path.open("rb") as source:
            source.seek(0, os.SEEK_END)
            size = source.tell()
            source.seek(max(0, size - limit))
            data = source.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").strip()
    return ("..." + text) if size > limit and text else text
