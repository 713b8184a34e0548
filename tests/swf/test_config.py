"""SWF configuration is checked before anything is sent; errors map onto the exception tree."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from pipeworker import (
    SWF,
    ConfigurationError,
    DataPipeline,
    LeaseLost,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
    Worker,
)
from pipeworker.services._signed import parse_error
from pipeworker.services.base import ConnectionSettings
from pipeworker.services.swf import map_error


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "op",
    )


def test_data_pipeline_stays_the_default_service() -> None:
    assert isinstance(Worker().config.service, DataPipeline)


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("", "domain: 0 characters, the minimum is 1"),
        ("d" * 257, "the maximum is 256"),
        ("a:b", "must not contain ':'"),
        ("arn", "literal string 'arn'"),
    ],
)
def test_a_bad_domain_is_refused_at_once(domain: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid SWF domain") as caught:
        SWF(domain=domain)
    assert message in str(caught.value)


def test_a_bad_task_list_is_refused_at_decoration() -> None:
    worker = Worker(service=SWF(domain="orders"))
    with pytest.raises(ConfigurationError, match=r"invalid task list 'a\|b'.*must not contain"):
        worker.activity("a|b")(lambda task: None)
    with pytest.raises(ConfigurationError, match="the maximum is 256"):
        worker.activity("t" * 257)(lambda task: None)


def test_identity_is_checked_and_its_default_cut_to_256() -> None:
    # The default, "<pid>@<hostname>", is read back from the service in test_worker.
    worker = Worker(service=SWF(domain="orders"), hostname="h" * 300)
    service = worker.config.service
    assert isinstance(service, SWF)
    assert service.check_identity("", "h" * 300) == []  # the default is cut to 256
    assert service.check_identity("", "host") == []
    with pytest.raises(ConfigurationError, match="identity: 257 characters"):
        SWF(domain="orders", identity="i" * 257)


def test_the_poll_read_timeout_must_outlast_the_hold() -> None:
    with pytest.raises(ConfigurationError, match="at least 70s"):
        SWF(domain="orders", poll_read_timeout=65)


def test_errors_map_onto_the_exception_tree() -> None:
    lost = map_error("RecordActivityTaskHeartbeat", _client_error("UnknownResourceFault"))
    assert isinstance(lost, LeaseLost)
    unknown_domain = map_error("PollForActivityTask", _client_error("UnknownResourceFault"))
    assert isinstance(unknown_domain, RequestRejected)
    assert not isinstance(unknown_domain, LeaseLost)
    limit = map_error("PollForActivityTask", _client_error("LimitExceededException"))
    assert isinstance(limit, ThrottlingError)
    throttled = map_error("RespondActivityTaskCompleted", _client_error("ThrottlingException"))
    assert isinstance(throttled, ThrottlingError)
    server = map_error("RespondActivityTaskFailed", _client_error("InternalFailure", 500))
    assert isinstance(server, TransientServiceError)
    denied = map_error("RecordActivityTaskHeartbeat", _client_error("OperationNotPermittedFault"))
    assert isinstance(denied, RequestRejected)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("UnknownResourceFault", 400, LeaseLost),
        ("LimitExceededException", 400, ThrottlingError),
        ("", 429, ThrottlingError),
        ("InternalFailure", 500, TransientServiceError),
        ("", 503, TransientServiceError),
        ("OperationNotPermittedFault", 400, RequestRejected),
    ],
)
def test_the_lean_transport_maps_error_answers_with_the_same_table(
    code: str, status: int, expected: type[Exception]
) -> None:
    body = json.dumps({"__type": f"com.amazonaws.swf.base.model#{code}", "message": "boom"})
    answer = parse_error(status, body.encode() if code else b"", {})
    lean = map_error("RecordActivityTaskHeartbeat", answer)
    botocore = map_error("RecordActivityTaskHeartbeat", _client_error(code or str(status), status))
    assert type(lean) is type(botocore) is expected
    assert lean.code == botocore.code  # type: ignore[attr-defined]


def test_the_transport_switch_from_the_service_the_flag_and_the_environment() -> None:
    from pipeworker.cli import apply_settings, parse_options

    assert SWF(domain="orders").transport == "lean"
    assert SWF(domain="orders", transport="aiobotocore").transport == "aiobotocore"
    with pytest.raises(ConfigurationError, match="transport='http'"):
        SWF(domain="orders", transport="http")  # type: ignore[arg-type]
    worker = Worker(service=SWF(domain="orders", identity="me"), region="us-east-1")
    apply_settings(worker, parse_options(["app:w", "--transport", "aiobotocore"], {}))
    service = worker.config.service
    assert isinstance(service, SWF)
    assert (service.transport, service.domain, service.identity) == ("aiobotocore", "orders", "me")
    apply_settings(worker, parse_options(["app:w"], {"PIPEWORKER_TRANSPORT": "lean"}))
    assert worker.config.service.transport == "lean"  # type: ignore[attr-defined]


SETTINGS = ConnectionSettings(
    region="us-east-1",
    endpoint_url="http://127.0.0.1:9",  # nothing is sent
    taskrunner_id="r",
    hostname="h",
    queues=["a", "b", "c"],
    max_concurrency=40,
)
HOT = (
    "RecordActivityTaskHeartbeat",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskFailed",
    "RespondActivityTaskCanceled",
)


async def test_the_lean_transport_sends_the_hot_calls_with_separate_poll_and_report_pools() -> None:
    async with SWF(domain="orders").connect(SETTINGS) as connection:
        senders = connection._senders  # type: ignore[attr-defined]
        assert senders["PollForActivityTask"].args == ("poll", "PollForActivityTask")
        for operation in HOT:
            assert senders[operation].args == ("report", operation)
        signed = senders["PollForActivityTask"].func.__self__
        assert (signed._signing_name, signed._prefix) == ("swf", "SimpleWorkflowService.")
        assert signed._signer._content_type_raw == "application/x-amz-json-1.0"
        poll, report = signed._sessions["poll"], signed._sessions["report"]
        assert poll.connector is not report.connector
        assert poll.timeout.sock_read >= 70  # above SWF's 60 s hold
        assert report.timeout.sock_read == 30
        assert poll.connector.limit == 43  # one poll per slot, plus one per task list
        assert report.connector.limit == 40
        assert signed._limits == {"poll": 2 << 20, "report": 1 << 20}
        # DescribeActivityType (once per type) still goes through aiobotocore.
        describe = senders["DescribeActivityType"].client.meta.config
        assert describe.retries["total_max_attempts"] == 1


async def test_the_aiobotocore_transport_has_separate_poll_and_report_clients() -> None:
    async with SWF(domain="orders", transport="aiobotocore").connect(SETTINGS) as connection:
        senders = connection._senders  # type: ignore[attr-defined]
        poll = senders["PollForActivityTask"].client
        report = senders["RecordActivityTaskHeartbeat"].client
        assert poll is not report
        for operation in (*HOT, "DescribeActivityType"):
            assert senders[operation].client is report
    assert poll.meta.config.read_timeout >= 70
    assert poll.meta.config.max_pool_connections == 43
    assert report.meta.config.max_pool_connections == 40
    for client in (poll, report):
        assert client.meta.config.retries["total_max_attempts"] == 1  # one retry layer
