"""A drop-in replacement for AWS Data Pipeline's Java Task Runner, on :class:`pipeworker.Worker`.

::

    pipeworker-taskrunner --config ~/credentials.json --workerGroup=wg-12345 \\
        --region=us-east-1 --logUri=s3://mybucket/taskrunner-logs

It runs ShellCommandActivity (``command`` or ``scriptUri``, ``scriptArgument``, ``stage`` with
S3DataNode inputs and outputs, ``stdout``/``stderr``) and the preconditions
ShellCommandPrecondition, Exists, S3KeyExists and S3PrefixNotEmpty; it writes each attempt's
logs under the pipeline's ``pipelineLogUri`` and its own log to ``--logUri``, hourly and on exit.

Modules: ``_options`` (the command line), ``_runner`` (the Worker subclass), ``_activity`` and
``_preconditions`` (the handlers), ``_shell`` and ``_process`` (running commands), ``_attempt``
and ``_logs`` (log files and shipping), ``_s3`` (streamed S3 transfers), ``_fields``.
"""

from __future__ import annotations

from pipeworker.taskrunner._cli import main

__all__ = ["main"]
