"""botocore's errors become pipeworker's at the service boundary, most specific first.

These build botocore exceptions directly (the one place the design allows it): the mapping is a
pure function, and the local-service tests exercise the same path over real HTTP.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from pipeworker import (
    ConfigurationError,
    LeaseLost,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
)
from pipeworker.services._signed import parse_error
from pipeworker.services.datapipeline import map_error


def client_error(code: str, status: int, message: str = "boom") -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code", ["TaskNotFoundException", "PipelineNotFoundException", "PipelineDeletedException"]
)
def test_lost_leases(code: str) -> None:
    error = map_error("ReportTaskProgress", client_error(code, 400))
    assert type(error) is LeaseLost
    assert error.code == code
    assert error.operation == "ReportTaskProgress"
    assert code in str(error)


def test_a_poll_holds_no_lease_so_task_not_found_is_a_rejection() -> None:
    assert type(map_error("PollForTask", client_error("TaskNotFoundException", 400))) is (
        RequestRejected
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("Throttling", 400), ("RequestLimitExceeded", 400), ("", 429)],
)
def test_throttling_is_transient(code: str, status: int) -> None:
    error = map_error("SetTaskStatus", client_error(code, status))
    assert type(error) is ThrottlingError
    assert isinstance(error, TransientServiceError)


@pytest.mark.parametrize(
    ("code", "status"), [("InternalServiceError", 500), ("503", 503), ("Whatever", 502)]
)
def test_server_errors_are_transient(code: str, status: int) -> None:
    assert type(map_error("SetTaskStatus", client_error(code, status))) is TransientServiceError


@pytest.mark.parametrize(
    "code", ["InvalidRequestException", "AccessDeniedException", "UnrecognizedClientException"]
)
def test_other_request_errors_are_rejections_that_are_not_retried(code: str) -> None:
    error = map_error("SetTaskStatus", client_error(code, 400, "errorId is bad"))
    assert type(error) is RequestRejected
    assert "errorId is bad" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
    ],
)
def test_transport_failures_are_transient(exc: Exception) -> None:
    error = map_error("ReportTaskProgress", exc)
    assert type(error) is TransientServiceError
    assert error.code == type(exc).__name__


def test_missing_credentials_is_a_configuration_error() -> None:
    assert isinstance(map_error("PollForTask", NoCredentialsError()), ConfigurationError)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("TaskNotFoundException", 400),
        ("PipelineDeletedException", 400),
        ("ThrottlingException", 400),
        ("", 429),
        ("InternalServiceError", 500),
        ("", 503),
        ("InvalidRequestException", 400),
        ("AccessDeniedException", 403),
    ],
)
def test_the_lean_transport_maps_error_answers_with_the_same_table(code: str, status: int) -> None:
    body = json.dumps({"__type": f"com.amazon.datapipeline#{code}", "message": "boom"})
    answer = parse_error(status, body.encode() if code else b"", {})
    assert answer.code == (code or str(status))
    lean = map_error("SetTaskStatus", answer)
    botocore = map_error("SetTaskStatus", client_error(code or str(status), status))
    assert type(lean) is type(botocore)
    assert lean.code == botocore.code  # type: ignore[attr-defined]
    if code:
        assert str(lean) == str(botocore)


def test_error_answers_read_the_code_and_message_as_botocore_does() -> None:
    answer = parse_error(400, b'{"__type": "a#b#Code", "Message": "capital"}', {})
    assert (answer.code, answer.message) == ("Code", "capital")
    header = parse_error(400, b"not json", {"x-amzn-ErrorType": "Other:http://x"})
    assert (header.code, header.message) == ("Other", "")
    assert parse_error(502, b"<html>", {}).code == "502"
