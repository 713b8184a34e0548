"""A handler compatible with ShellCommandActivity: runs ``command`` in a shell, as the Java Task
Runner does, streaming its output to the log; a non-zero exit fails the task with the exit code.

    python -m pipeworker examples.shell_command:worker --local

``scriptArgument`` values become ``$1``, ``$2``... of the command. Cancelling the task (the service
says ``canceled``, or the runner shuts down) terminates the command, then kills it if it lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from pipeworker import Task, TaskFailed, Worker

PIPELINE_DEFINITION = "shell_command.json"

worker = Worker(max_concurrency=2)

KILL_AFTER = 5.0
"""Seconds a cancelled command gets between SIGTERM and SIGKILL."""


@worker.activity("shell", type="ShellCommandActivity")
async def shell_command(task: Task) -> None:
    """Run the activity's ``command``; FAILED with ``ExitCode<n>`` when it exits non-zero."""
    command = task.field("command")
    if not command:
        raise TaskFailed("MissingCommand", "the activity has no 'command' field")
    arguments = task.field("scriptArgument", [])
    if not isinstance(arguments, list):
        arguments = [arguments]
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        "sh",
        *map(str, arguments),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "PIPEWORKER_TASK_ID": task.id,
            "PIPEWORKER_PIPELINE_ID": task.pipeline_id,
        },
        start_new_session=True,  # so a cancel can signal the whole command, not just the shell
    )
    try:
        assert process.stdout is not None
        lines = 0
        async for raw in process.stdout:
            lines += 1
            task.logger.info("| %s", raw.decode(errors="replace").rstrip())
        code = await process.wait()
    except asyncio.CancelledError:
        await _stop(process)
        raise
    await task.report_progress(outputLines=lines)
    if code != 0:
        raise TaskFailed(f"ExitCode{code}", f"the command exited with code {code}: {command[:200]}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        await asyncio.wait_for(process.wait(), KILL_AFTER)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        await process.wait()
