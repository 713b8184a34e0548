"""The Step Functions connection's edge: its error table, the retried SendTask* that answers
TaskTimedOut, and the settings it refuses before anything is sent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from pipeworker import (
    ConfigurationError,
    LeaseLost,
    RequestRejected,
    StepFunctions,
    ThrottlingError,
    TransientServiceError,
    _retry,
)
from pipeworker.services._signed import ErrorAnswer
from pipeworker.services.base import Outcome, ReceivedTask
from pipeworker.services.stepfunctions import (
    _StepFunctionsConnection,
    failure_params,
    map_error,
    rate_limits_for,
)

ARN = "arn:aws:states:us-east-1:123456789012:activity:resize"
TASK = ReceivedTask(id="token-1", queue=ARN)


def answer(code: str) -> ErrorAnswer:
    return ErrorAnswer(400, code, f"{code} happened")


def connection(script: list[Any], sent: list[tuple[str, Any]]) -> _StepFunctionsConnection:
    """A connection whose every call takes the next item of *script*: raised if an exception,
    else returned."""

    def sender(operation: str) -> Any:
        async def send(params: Mapping[str, Any]) -> Any:
            sent.append((operation, dict(params)))
            item = script.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item

        return send

    operations = ["GetActivityTask", "SendTaskHeartbeat", "SendTaskSuccess", "SendTaskFailure"]
    return _StepFunctionsConnection({op: sender(op) for op in operations}, "w", {})


async def test_a_retried_send_task_success_answering_task_timed_out_is_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _retry.set_testing(True)
    sent: list[tuple[str, Any]] = []
    # The first answer is lost (the call landed); the retry finds the token dead.
    conn = connection([aiohttp.ServerDisconnectedError(), answer("TaskTimedOut")], sent)
    try:
        with caplog.at_level(logging.INFO, logger="pipeworker.stepfunctions"):
            await _retry.call(_retry.STATUS, lambda: conn.finish(TASK, Outcome.finished({"a": 1})))
    finally:
        _retry.set_testing(False)
    assert [op for op, _ in sent] == ["SendTaskSuccess", "SendTaskSuccess"]
    assert sent[0][1] == {"taskToken": "token-1", "output": '{"a":1}'}
    (record,) = [r for r in caplog.records if "TaskTimedOut on a retry" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "most likely landed" in record.getMessage()


async def test_task_timed_out_on_a_first_send_is_a_lost_lease() -> None:
    sent: list[tuple[str, Any]] = []
    conn = connection([answer("TaskTimedOut")], sent)
    with pytest.raises(LeaseLost):
        await conn.finish(TASK, Outcome.failed("Boom", "it broke"))
    assert sent == [
        ("SendTaskFailure", {"taskToken": "token-1", "error": "Boom", "cause": "it broke"})
    ]


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
async def test_a_heartbeat_answering_a_dead_token_is_a_lost_lease(code: str) -> None:
    conn = connection([answer(code)], [])
    with pytest.raises(LeaseLost, match=code):
        await conn.report_progress(TASK)


@pytest.mark.parametrize(
    ("operation", "code", "expected"),
    [
        ("GetActivityTask", "ActivityWorkerLimitExceeded", ThrottlingError),
        ("GetActivityTask", "KmsThrottlingException", ThrottlingError),
        ("SendTaskSuccess", "ThrottlingException", ThrottlingError),
        ("GetActivityTask", "KmsAccessDeniedException", RequestRejected),
        ("GetActivityTask", "KmsInvalidStateException", RequestRejected),
        ("GetActivityTask", "ActivityDoesNotExist", RequestRejected),
        ("GetActivityTask", "InvalidToken", RequestRejected),  # a poll holds no lease
        ("SendTaskSuccess", "InvalidOutput", RequestRejected),
        ("SendTaskHeartbeat", "TaskDoesNotExist", LeaseLost),
        ("SendTaskFailure", "InternalFailure", TransientServiceError),
    ],
)
def test_the_error_table(operation: str, code: str, expected: type[Exception]) -> None:
    mapped = map_error(operation, answer(code))
    assert type(mapped) is expected
    assert mapped.code == code  # type: ignore[attr-defined]


def test_failure_params_fit_the_limits_and_name_a_precondition() -> None:
    params = failure_params("t", Outcome.failed("E" * 300, "m" * 40_000))
    assert (len(params["error"]), len(params["cause"])) == (256, 32_768)
    assert failure_params("t", Outcome.false("not yet"))["error"] == "PreconditionNotMet"


def test_rate_limits_follow_the_region() -> None:
    large = rate_limits_for("us-west-2")
    small = rate_limits_for("ap-south-1")
    assert (large["poll"].burst, large["poll"].rate) == (3000, 500)
    assert (small["finish"].burst, small["finish"].rate) == (1500, 300)
    assert rate_limits_for(None) == small  # unknown: the conservative budgets
    assert set(large) == {"poll", "report_progress", "finish"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"worker_name": ""}, "worker_name"),
        ({"worker_name": "w" * 81}, "worker_name"),
        ({"worker_name": "has space"}, "worker_name"),
        ({"poll_read_timeout": 60}, "at least 65"),
        ({"heartbeat_seconds": {ARN: 0}}, "HeartbeatSeconds"),
        ({"transport": "http2"}, "transport"),
    ],
)
def test_bad_settings_are_refused_at_once(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        StepFunctions(**settings)


def test_activities_are_arns_or_names() -> None:
    service = StepFunctions()
    assert service.check_queue(ARN) == []
    assert service.check_queue("resize") == []
    assert service.check_queue("arn:aws:states:us-east-1:123456789012:stateMachine:x")
    assert service.check_queue("with space")
    assert service.check_queue("a" * 81)
    assert service.check_identity("runner", "h" * 200) == []  # the default name is cut to 80
