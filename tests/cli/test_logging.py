"""Log formats: what an operator reads in text, and what a log pipeline parses in JSON."""

from __future__ import annotations

import io
import json
import logging

from pipeworker._logging import configure

TASK = {
    "task_id": "t-1",
    "pipeline_id": "df-1",
    "attempt_id": "@Copy_2026-01-01T00:00:00_Attempt=1",
    "worker_group": "wg",
}


def test_text_names_the_task_by_its_attempt() -> None:
    stream = io.StringIO()
    configure("info", "text", stream)
    logging.getLogger("app").info("copied %d rows", 5, extra={**TASK, "rows": 5})
    line = stream.getvalue().strip()
    assert "INFO    app: copied 5 rows [@Copy_2026-01-01T00:00:00_Attempt=1 rows=5]" in line
    assert "df-1" not in line


def test_json_is_one_object_per_line_with_every_extra() -> None:
    stream = io.StringIO()
    configure("debug", "json", stream)
    log = logging.getLogger("app")
    log.debug("one", extra=TASK)
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("two\nlines", extra={"password": "hunter2", "AWS_SESSION_TOKEN": "x"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "DEBUG"
    assert first["logger"] == "app"
    assert first["message"] == "one"
    assert {key: first[key] for key in TASK} == TASK
    assert first["time"].endswith("+00:00")
    assert second["message"] == "two\nlines"
    assert "ValueError: broken" in second["exc_info"]
    assert second["password"] == second["AWS_SESSION_TOKEN"] == "[redacted]"


def test_configuring_twice_does_not_print_twice() -> None:
    stream = io.StringIO()
    configure("info", "text", stream)
    configure("info", "text", stream)
    logging.getLogger("app").info("once")
    assert stream.getvalue().count("once") == 1


def test_botocore_debug_stays_quiet() -> None:
    stream = io.StringIO()
    configure("debug", "text", stream)
    logging.getLogger("botocore.auth").debug("Signature: secret")
    assert stream.getvalue() == ""
