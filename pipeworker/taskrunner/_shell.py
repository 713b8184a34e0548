"""What ShellCommandActivity and ShellCommandPrecondition share: ``command`` or ``scriptUri``,
``scriptArgument``, and running it inside the attempt's files.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeworker import PreconditionNotMet, Task, TaskFailed
from pipeworker.taskrunner._attempt import AttemptFiles, safe_name, ship_attempt_logs
from pipeworker.taskrunner._fields import as_list
from pipeworker.taskrunner._process import KILL_AFTER, Command, run_command
from pipeworker.taskrunner._s3 import S3Error, S3Uri

if TYPE_CHECKING:
    from pipeworker.taskrunner._s3 import Transfers

__all__ = ["RunnerContext", "in_attempt", "run_shell", "substitute"]

log = logging.getLogger("pipeworker.taskrunner")

SHELL = "/bin/sh"


@dataclass
class RunnerContext:
    """What every handler of the runner needs.

    Attributes:
        output: the ``--output`` directory (working and log directories go below it).
        formatter: the format of the attempts' ``Activity.log`` lines.
        kill_after: seconds between SIGTERM and SIGKILL for a cancelled command.
        transfers: the S3 client, once the runner has started.
        env: variables added to every command's environment.
    """

    output: Path
    formatter: logging.Formatter
    kill_after: float = KILL_AFTER
    transfers: Transfers | None = None
    env: dict[str, str] = field(default_factory=dict)

    def s3(self) -> Transfers:
        """The S3 client; it exists while the runner runs."""
        if self.transfers is None:  # pragma: no cover (handlers only run after startup)
            raise TaskFailed("S3Unavailable", "the runner's S3 client is not open")
        return self.transfers


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` for each of *variables* in *text*; other ``$`` forms are left to sh."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    return text


async def _fetch_script(context: RunnerContext, files: AttemptFiles, uri_text: str) -> list[str]:
    try:
        uri = S3Uri.parse(uri_text)
    except S3Error as exc:
        raise TaskFailed("InvalidScriptUri", f"scriptUri: {exc}") from None
    name = safe_name(uri.key.rsplit("/", 1)[-1] or "script")
    path = files.workdir / f"script-{name}"
    try:
        await context.s3().download_file(uri, path)
    except S3Error as exc:
        raise TaskFailed("ScriptDownloadFailed", str(exc)) from None
    path.chmod(0o700)
    with path.open("rb") as script:
        has_interpreter = script.read(2) == b"#!"
    # A script naming its interpreter runs as itself; any other is a shell script.
    return [str(path)] if has_interpreter else [SHELL, str(path)]


async def run_shell(
    context: RunnerContext,
    task: Task,
    files: AttemptFiles,
    *,
    variables: Mapping[str, str] | None = None,
) -> int:
    """Run the object's ``command`` (or downloaded ``scriptUri``) with its ``scriptArgument`` s.

    *variables* (the staging directories) are substituted as ``${NAME}`` in the command and the
    arguments, and set in the command's environment. Output is appended to the attempt's
    ``stdout`` and ``stderr`` files. Returns the exit status.

    Raises:
        TaskFailed: neither or both of ``command`` and ``scriptUri``, a script that cannot be
            downloaded, or a program that cannot be started.
    """
    variables = dict(variables or {})
    command = task.field("command")
    script_uri = task.field("scriptUri")
    if isinstance(command, list) or isinstance(script_uri, list):
        raise TaskFailed("InvalidCommand", "command and scriptUri take one value each")
    if not command and not script_uri:
        raise TaskFailed("MissingCommand", "the object has neither 'command' nor 'scriptUri'")
    if command and script_uri:
        raise TaskFailed(
            "CommandAndScriptUri", "the object has both 'command' and 'scriptUri': keep one"
        )
    arguments = [substitute(str(item), variables) for item in as_list(task.field("scriptArgument"))]
    if command:
        argv = [SHELL, "-c", substitute(command, variables), "sh", *arguments]
        shown = command
    else:
        argv = [*await _fetch_script(context, files, script_uri), *arguments]
        shown = script_uri
    env = {**os.environ, **context.env, **variables}
    task.logger.info("running %s", shown[:500])
    try:
        status = await run_command(
            Command(argv, files.workdir, env, files.stdout, files.stderr), context.kill_after
        )
    except OSError as exc:
        raise TaskFailed("CommandNotStarted", f"cannot start {shown[:200]}: {exc}") from None
    task.logger.info("the command ended with status %d", status)
    return status


async def in_attempt(
    context: RunnerContext, task: Task, body: Callable[[AttemptFiles], Awaitable[None]]
) -> None:
    """Run *body* inside the attempt's files; then ship its logs and tidy its working directory.

    The outcome is *body*'s: shipping logs never changes it (a failed upload is retried later).
    """
    files = AttemptFiles(task, context.output, context.formatter)
    files.open()
    succeeded = False
    try:
        await body(files)
        succeeded = True
    except PreconditionNotMet as exc:
        succeeded = True  # the check ran fine; its answer was "not yet"
        task.logger.info("precondition not met: %s", exc)
        raise
    except TaskFailed as exc:
        task.logger.error("the attempt failed: %s", exc)
        raise
    except asyncio.CancelledError:
        task.logger.warning("the attempt was cancelled (%s)", task.cancel_reason or "stopping")
        raise
    finally:
        files.close(succeeded)
        try:
            destination = files.log_destination(task.field("pipelineLogUri"))
        except S3Error as exc:
            log.warning("pipelineLogUri: %s; the logs stay in %s", exc, files.logdir)
            destination = None
        await ship_attempt_logs(context.transfers, files.logdir, destination, task.log_extra())
