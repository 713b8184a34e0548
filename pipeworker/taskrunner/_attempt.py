"""One attempt's files: its working directory, its log directory, and where the logs go.

Each attempt gets:

- a working directory ``<output>/tasks/<attempt>-<random>/``, the command's current directory and
  the parent of its staging directories; removed when the attempt succeeds, kept when it fails
  (or is cancelled) so it can be inspected;
- a log directory ``<output>/logs/<pipelineId>/<componentId>/<instanceId>/<attemptId>/`` holding
  ``Activity.log`` (this runner's log lines about the attempt), ``stdout`` and ``stderr`` (the
  command's output). That is the layout the Developer Guide documents under the pipeline's
  ``pipelineLogUri`` (``pipelineId/componentName/instanceId/attemptId``): when the pipeline sets
  one, the directory is uploaded there when the attempt ends and then deleted. An upload that
  fails leaves the directory (with a ``.destination`` file naming the S3 location) for the log
  shipper's next cycle, and never changes the task's outcome.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeworker import Ref, Task
from pipeworker.taskrunner._s3 import S3Error, S3Uri, Transfers

__all__ = ["DESTINATION_FILE", "AttemptFiles", "ship_attempt_logs"]

log = logging.getLogger("pipeworker.taskrunner")

DESTINATION_FILE = ".destination"
"""In a log directory waiting for upload: the ``s3://`` prefix it goes to."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._=@:+-]")


def safe_name(text: str, limit: int = 120) -> str:
    """*text* as one path segment: no slashes, no ``..``, no control characters."""
    cleaned = _UNSAFE.sub("_", text)[:limit].strip(".")
    return cleaned or "_"


def _ref_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value.id if isinstance(value, Ref) else None


class _AttemptFilter(logging.Filter):
    def __init__(self, attempt_id: str) -> None:
        super().__init__()
        self.attempt_id = attempt_id

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "attempt_id", None) == self.attempt_id


class AttemptFiles:
    """The directories and log capture of one attempt; a context manager around the handler.

    Args:
        task: the attempt.
        output: the runner's ``--output`` directory.
        formatter: how ``Activity.log`` lines look (the runner's own log format).
    """

    def __init__(self, task: Task, output: Path, formatter: logging.Formatter) -> None:
        self.task = task
        attempt = task.objects.get(task.attempt_id, {})
        self.component_id = _ref_id(attempt.get("@componentParent")) or task.attempt_id
        self.instance_id = _ref_id(attempt.get("@instanceParent")) or task.attempt_id
        token = secrets.token_hex(4)
        self.workdir = output / "tasks" / f"{safe_name(task.attempt_id)}-{token}"
        self.logdir = (
            output
            / "logs"
            / safe_name(task.pipeline_id)
            / safe_name(self.component_id)
            / safe_name(self.instance_id)
            / safe_name(task.attempt_id)
        )
        self.stdout = self.logdir / "stdout"
        self.stderr = self.logdir / "stderr"
        self.activity_log = self.logdir / "Activity.log"
        self._formatter = formatter
        self._handler: logging.Handler | None = None

    def open(self) -> None:
        """Create the directories and start copying the attempt's log lines to Activity.log."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logdir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.activity_log, encoding="utf-8")
        handler.setFormatter(self._formatter)
        handler.addFilter(_AttemptFilter(self.task.attempt_id))
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        self._handler = handler

    def close(self, succeeded: bool) -> None:
        """Stop capturing; remove the working directory if the attempt succeeded."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if succeeded:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log.info(
                "kept the working directory of the attempt: %s",
                self.workdir,
                extra=self.task.log_extra(),
            )

    def log_destination(self, pipeline_log_uri: str | None) -> S3Uri | None:
        """Where this attempt's logs go under *pipeline_log_uri*, or None without one.

        Raises:
            S3Error: *pipeline_log_uri* is not an ``s3://`` URI.
        """
        if not pipeline_log_uri:
            return None
        return S3Uri.parse(pipeline_log_uri).join(
            self.task.pipeline_id, self.component_id, self.instance_id, self.task.attempt_id
        )


def _log_files(logdir: Path) -> list[Path]:
    return sorted(p for p in logdir.iterdir() if p.is_file() and p.name != DESTINATION_FILE)


async def ship_attempt_logs(
    transfers: Transfers | None, logdir: Path, destination: S3Uri | None, extra: Mapping[str, str]
) -> bool:
    """Upload *logdir* to *destination* and delete it; True when it is gone.

    Without a destination the directory stays where it is (the local copy is the log). A failed
    upload is logged and leaves the directory, marked with its destination, for the next cycle.
    """
    if destination is None:
        return False
    try:
        (logdir / DESTINATION_FILE).write_text(str(destination), encoding="utf-8")
        if transfers is None:
            return False
        for path in _log_files(logdir):
            await transfers.upload_file(path, destination.join(path.name))
    except (S3Error, OSError) as exc:
        log.warning(
            "the attempt's logs stay in %s and are retried on the next upload cycle: %s",
            logdir,
            exc,
            extra=dict(extra),
        )
        return False
    shutil.rmtree(logdir, ignore_errors=True)
    for parent in list(logdir.parents)[:3]:  # the instance, component and pipeline folders
        try:
            parent.rmdir()
        except OSError:
            break  # not empty: other attempts' logs are still there
    return True
