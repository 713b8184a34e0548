"""Log output for the command line: a readable text format and a one-object-per-line JSON format.

Both show what a record carries in ``extra`` (``task_id``, ``attempt_id``, ``pipeline_id``,
``worker_group``, ...), so a task's lines can be found with grep or a log query. Keys that look
like secrets are never written out, whatever a caller put in ``extra``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "TextFormatter", "configure"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Every attribute a LogRecord has before `extra` is applied; what is left over came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET = re.compile(
    r"secret|password|passwd|credential|session_token|access_key|authorization", re.I
)
REDACTED = "[redacted]"
_TASK_KEYS = ("task_id", "pipeline_id", "worker_group")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        extras[key] = REDACTED if _SECRET.search(key) else value
    return extras


class TextFormatter(logging.Formatter):
    """``19:40:01.123 INFO    pipeworker.task: message [@Fetch_..._Attempt=1 key=value]``.

    A record's extras follow the message; a task's ids are shortened to its attempt id.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )

    def format(self, record: logging.LogRecord) -> str:
        """Format *record*, its extras appended as ``key=value`` pairs."""
        text = super().format(record)
        extras = _extras(record)
        if not extras:
            return text
        # The attempt id names the task well enough for a reader; JSON logs carry every id.
        attempt = extras.pop("attempt_id", None)
        if attempt is not None:
            for key in _TASK_KEYS:
                extras.pop(key, None)
        parts = [str(attempt)] if attempt is not None else []
        parts += [f"{key}={value}" for key, value in extras.items()]
        pairs = " ".join(parts)
        first, newline, rest = text.partition("\n")
        return f"{first} [{pairs}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then the extras.

    An exception's traceback goes in ``exc_info`` as text. Values JSON cannot encode are written
    with ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format *record* as one line of JSON."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = record.stack_info
        return json.dumps(data, default=str, ensure_ascii=False)


def configure(
    level: str = "info",
    fmt: Literal["text", "json"] | str = "text",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send pipeworker's and the app's logs to *stream* (stderr by default) at *level*.

    Replaces the handlers a previous call installed, so calling it twice (tests) does not print
    every line twice. Returns the handler installed on the root logger.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._pipeworker = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_pipeworker", False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # botocore and aiohttp are chatty at debug and say nothing a runner's user needs at info.
    for noisy in ("botocore", "aiobotocore", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
