"""SWF configuration is checked before anything is sent; errors map onto the exception tree."""

from __future__ import annotations

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
