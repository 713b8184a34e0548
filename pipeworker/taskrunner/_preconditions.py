"""The preconditions the runner evaluates: a holding precondition ends FINISHED, one that does
not hold yet ends FALSE (the service checks it again until its ``preconditionTimeout``).

- ShellCommandPrecondition: ``command`` or ``scriptUri`` with ``scriptArgument`` s; exit 0 holds.
- Exists: the data node it guards exists: an S3DataNode's ``filePath`` object, or at least one
  object under its ``directoryPath``.
- S3KeyExists (``s3Key``) and S3PrefixNotEmpty (``s3Prefix``). On AWS these are system-managed
  (the service checks them itself and never hands them to a runner); they are here for a
  service that does hand them out, and cost nothing otherwise.
"""

from __future__ import annotations

from pipeworker import PreconditionNotMet, Task, TaskFailed
from pipeworker.taskrunner._activity import node_location
from pipeworker.taskrunner._attempt import AttemptFiles
from pipeworker.taskrunner._fields import object_field, object_type, refs
from pipeworker.taskrunner._process import describe_exit
from pipeworker.taskrunner._s3 import S3Error, S3Uri
from pipeworker.taskrunner._shell import RunnerContext, in_attempt, run_shell

__all__ = [
    "PRECONDITIONS",
    "exists",
    "guarded_node",
    "s3_key_exists",
    "s3_prefix_not_empty",
    "shell_command_precondition",
]


async def shell_command_precondition(context: RunnerContext, task: Task) -> None:
    """FINISHED when the command exits 0, FALSE otherwise."""

    async def body(files: AttemptFiles) -> None:
        status = await run_shell(context, task, files)
        if status != 0:
            _, phrase = describe_exit(status)
            raise PreconditionNotMet(f"the command {phrase}")

    await in_attempt(context, task, body)


def guarded_node(task: Task) -> str:
    """The data node an Exists precondition checks.

    In order: the precondition's own ``node`` reference; the data node in the task whose
    ``precondition`` field names this precondition (its instance or its component); the only
    data node in the task.

    Raises:
        TaskFailed: no data node, or several and none names this precondition.
    """
    own = refs(task.field("node"))
    if own:
        return own[0]
    attempt = task.objects.get(task.attempt_id, {})
    mine = {
        *refs(attempt.get("@instanceParent")),
        *refs(attempt.get("@componentParent")),
        task.attempt_id,
    }
    nodes = [oid for oid in task.objects if object_type(task, oid).endswith("DataNode")]
    naming = [oid for oid in nodes if mine & set(refs(object_field(task, oid, "precondition")))]
    if naming:
        return naming[0]
    if len(nodes) == 1:
        return nodes[0]
    raise TaskFailed(
        "NoDataNode",
        f"cannot tell which data node this Exists precondition checks ({len(nodes)} in the task)",
    )


async def _check(task: Task, context: RunnerContext, uri: S3Uri, directory: bool) -> None:
    try:
        found = (
            await context.s3().prefix_not_empty(uri)
            if directory
            else await context.s3().exists(uri)
        )
    except S3Error as exc:
        raise TaskFailed("PreconditionCheckFailed", str(exc)) from None
    what = f"objects under {uri}" if directory else str(uri)
    if not found:
        raise PreconditionNotMet(f"{what}: not found")
    task.logger.info("%s exists", what)


async def exists(context: RunnerContext, task: Task) -> None:
    """FINISHED when the guarded S3DataNode's data exists, FALSE otherwise."""

    async def body(files: AttemptFiles) -> None:
        uri, directory = node_location(task, guarded_node(task))
        await _check(task, context, uri, directory)

    await in_attempt(context, task, body)


def _uri_field(task: Task, key: str) -> S3Uri:
    value = task.field(key)
    if not isinstance(value, str) or not value:
        raise TaskFailed("InvalidPrecondition", f"the precondition has no {key!r} field")
    try:
        return S3Uri.parse(value)
    except S3Error as exc:
        raise TaskFailed("InvalidPrecondition", f"{key}: {exc}") from None


async def s3_key_exists(context: RunnerContext, task: Task) -> None:
    """FINISHED when the ``s3Key`` object exists, FALSE otherwise."""

    async def body(files: AttemptFiles) -> None:
        await _check(task, context, _uri_field(task, "s3Key"), directory=False)

    await in_attempt(context, task, body)


async def s3_prefix_not_empty(context: RunnerContext, task: Task) -> None:
    """FINISHED when at least one object is under ``s3Prefix``, FALSE otherwise."""

    async def body(files: AttemptFiles) -> None:
        await _check(task, context, _uri_field(task, "s3Prefix"), directory=True)

    await in_attempt(context, task, body)


PRECONDITIONS = {
    "ShellCommandPrecondition": shell_command_precondition,
    "Exists": exists,
    "S3KeyExists": s3_key_exists,
    "S3PrefixNotEmpty": s3_prefix_not_empty,
}
"""The precondition types this runner evaluates, by type."""
