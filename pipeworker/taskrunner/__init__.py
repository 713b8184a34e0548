"""A drop-in replacement for AWS Data Pipeline's Java Task Runner, on :class:`pipeworker.Worker`.

::

    pipeworker-taskrunner --config ~/credentials.json --workerGroup=wg-12345 \\
        --region=us-east-1 --logUri=s3://mybucket/taskrunner-logs

It runs ShellCommandActivity (``command`` or ``scriptUri``, ``scriptArgument``, ``stage`` with
S3DataNode inputs and outputs, ``stdout``/``stderr``) and the preconditions
ShellCommandPrecondition, Exists, S3KeyExists and S3PrefixNotEmpty; it writes each attempt's
logs under the pipeline's ``pipelineLogUri`` and its own log to ``--logUri``, hourly and on exit.

Embedded: ``TaskRunner(RunnerSettings(worker_groups=["wg-1"], output=Path("output")))`` is a
:class:`pipeworker.Worker` like any other (``run()``, ``serve()``, ``async with``).

Modules: ``_options`` (the command line), ``_runner`` (the Worker subclass), ``_activity`` and
``_preconditions`` (the handlers), ``_shell`` and ``_process`` (running commands), ``_attempt``
and ``_logs`` (log files and shipping), ``_s3`` (streamed S3 transfers), ``_fields``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeworker.taskrunner._cli import console, main

if TYPE_CHECKING:
    from pipeworker.taskrunner._runner import RunnerSettings, TaskRunner

__all__ = ["RunnerSettings", "TaskRunner", "console", "main"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so --help answers before the worker and its imports load.
    if name in ("RunnerSettings", "TaskRunner"):
        from pipeworker.taskrunner import _runner

        return getattr(_runner, name)
    raise AttributeError(f"module 'pipeworker.taskrunner' has no attribute {name!r}")
