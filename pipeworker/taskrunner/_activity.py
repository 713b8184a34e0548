"""ShellCommandActivity, as the Developer Guide documents it.

- ``command`` (run by ``/bin/sh -c``) or ``scriptUri`` (downloaded from S3, then run), with the
  ``scriptArgument`` values as ``$1``, ``$2``... in order;
- ``stage: true`` with S3DataNode ``input`` s and ``output`` s (``directoryPath`` or
  ``filePath``): inputs are downloaded to ``${INPUT1_STAGING_DIR}``... before the command, outputs
  uploaded from ``${OUTPUT1_STAGING_DIR}``... after it succeeds. The variables are substituted in
  the command and the arguments, and set in its environment;
- ``stdout`` and ``stderr``: an ``s3://`` path (uploaded when the command ends) or a local file;
- a non-zero exit is FAILED with errorId ``ExitCode<n>`` (``KilledBySIGKILL`` for a signal).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from pipeworker import Task, TaskFailed
from pipeworker.taskrunner._attempt import AttemptFiles
from pipeworker.taskrunner._fields import is_true, object_field, object_type, refs
from pipeworker.taskrunner._process import describe_exit, tail
from pipeworker.taskrunner._s3 import S3Error, S3Uri
from pipeworker.taskrunner._shell import RunnerContext, in_attempt, run_shell

__all__ = ["node_location", "shell_command_activity"]

S3_DATA_NODE = "S3DataNode"


def node_location(task: Task, node_id: str) -> tuple[S3Uri, bool]:
    """Where S3DataNode *node_id* points: ``(uri, is_directory)``.

    Raises:
        TaskFailed: the node is not an S3DataNode, or has neither path (or both).
    """
    kind = object_type(task, node_id)
    if kind != S3_DATA_NODE:
        raise TaskFailed(
            "UnsupportedDataNode",
            f"{node_id} is a {kind or 'object without a type'}; this runner stages "
            f"{S3_DATA_NODE} only",
        )
    directory = object_field(task, node_id, "directoryPath")
    file_path = object_field(task, node_id, "filePath")
    if bool(directory) == bool(file_path):
        raise TaskFailed(
            "InvalidDataNode", f"{node_id} must have one of directoryPath and filePath"
        )
    try:
        return S3Uri.parse(directory or file_path), bool(directory)
    except S3Error as exc:
        raise TaskFailed("InvalidDataNode", f"{node_id}: {exc}") from None


async def _stage_in(context: RunnerContext, task: Task, node_id: str, directory: Path) -> None:
    uri, is_directory = node_location(task, node_id)
    try:
        if is_directory:
            count = await context.s3().download_prefix(uri, directory)
            task.logger.info("staged %d file(s) of %s from %s", count, node_id, uri)
        else:
            name = uri.key.rsplit("/", 1)[-1] or "input"
            size = await context.s3().download_file(uri, directory / name)
            task.logger.info("staged %s (%d bytes) from %s", node_id, size, uri)
    except S3Error as exc:
        raise TaskFailed("InputStagingFailed", f"{node_id}: {exc}") from None


async def _stage_out(context: RunnerContext, task: Task, node_id: str, directory: Path) -> None:
    uri, is_directory = node_location(task, node_id)
    try:
        if is_directory:
            count = await context.s3().upload_directory(directory, uri)
            task.logger.info("uploaded %d file(s) of %s to %s", count, node_id, uri)
            return
        produced = _files_in(directory)
        name = uri.key.rsplit("/", 1)[-1]
        chosen = [path for path in produced if path.name == name] or produced
        if len(chosen) != 1:
            raise TaskFailed(
                "OutputStagingFailed",
                f"{node_id} has a filePath, so the command must leave exactly one file in "
                f"its staging directory (found {len(produced)})",
            )
        size = await context.s3().upload_file(chosen[0], uri)
        task.logger.info("uploaded %s (%d bytes) to %s", node_id, size, uri)
    except S3Error as exc:
        raise TaskFailed("OutputStagingFailed", f"{node_id}: {exc}") from None


def _files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def _copy_to(source: Path, target: str) -> None:
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)


async def deliver_stream(context: RunnerContext, task: Task, source: Path, key: str) -> None:
    """Copy the captured *source* to the object's ``stdout``/``stderr`` (*key*) destination.

    Raises:
        TaskFailed: the destination cannot be written.
    """
    target = task.field(key)
    if not target or not isinstance(target, str):
        return
    try:
        if target.startswith("s3://"):
            await context.s3().upload_file(source, S3Uri.parse(target))
        else:
            await asyncio.to_thread(_copy_to, source, target)
    except (S3Error, OSError) as exc:
        raise TaskFailed(f"{key.capitalize()}DeliveryFailed", f"{key} -> {target}: {exc}") from None


async def shell_command_activity(context: RunnerContext, task: Task) -> None:
    """Run one ShellCommandActivity attempt (see the module's docstring)."""

    async def body(files: AttemptFiles) -> None:
        stage = is_true(task.field("stage"))
        inputs = refs(task.field("input")) if stage else []
        outputs = refs(task.field("output")) if stage else []
        variables: dict[str, str] = {}
        staging = files.workdir / "staging"
        for number, node_id in enumerate(inputs, 1):
            directory = staging / f"input{number}"
            directory.mkdir(parents=True)
            variables[f"INPUT{number}_STAGING_DIR"] = str(directory)
            await _stage_in(context, task, node_id, directory)
        for number, _ in enumerate(outputs, 1):
            directory = staging / f"output{number}"
            directory.mkdir(parents=True)
            variables[f"OUTPUT{number}_STAGING_DIR"] = str(directory)
        status = await run_shell(context, task, files, variables=variables)
        try:
            for key, source in (("stdout", files.stdout), ("stderr", files.stderr)):
                await deliver_stream(context, task, source, key)
        except TaskFailed:
            if status == 0:
                raise
            # The exit code is the failure that matters; the delivery problem is in the log.
            task.logger.warning("could not deliver the command's output", exc_info=True)
        if status != 0:
            error_id, phrase = describe_exit(status)
            last = tail(files.stderr)
            raise TaskFailed(error_id, f"the command {phrase}" + (f": {last}" if last else ""))
        for number, node_id in enumerate(outputs, 1):
            await _stage_out(context, task, node_id, staging / f"output{number}")

    await in_attempt(context, task, body)
