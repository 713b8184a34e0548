"""Secrets stay out of logs; the local service listens on loopback and can check signatures.

The worker runs with known fake credentials while every logger (pipeworker, botocore,
aiobotocore, aiohttp) is at DEBUG: no line may contain the access key, the secret or a
signature. With ``verify_signatures`` on, the local service answers the errors AWS answers,
so a runner with the wrong secret fails locally, clearly, and without a hot retry loop.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeworker import Task, Worker
from pipeworker.local import LocalConfig, LocalService
from pipeworker.local.__main__ import _parser
from tests.helpers import activities, client_config, eventually, start_pipeline, statuses
from tests.reliability.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY

pytestmark = pytest.mark.timeout(30)

VERIFYING = LocalConfig(
    poll_hold=0.3,
    time_scale=0.001,
    verify_signatures=True,
    credentials={FAKE_ACCESS_KEY: FAKE_SECRET_KEY},
)
# A signature after "Signature=" (the header) or "Signature:" (botocore.auth's own line).
_SIGNATURE = re.compile(r"Signature[=:]\s*[0-9a-f]{64}")
_LOGGERS = ("", "pipeworker", "botocore", "aiobotocore", "aiohttp", "urllib3", "asyncio")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    """Every logger at DEBUG, every record formatted (with its traceback) into a list."""
    capture = _Capture()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    root.addHandler(capture)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _client(endpoint: str, **credentials: str) -> Any:
    return get_session().create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(retries={"total_max_attempts": 1}),
        **credentials,
    )


async def test_debug_logs_never_show_the_access_key_secret_or_a_signature(
    debug_logs: _Capture,
) -> None:
    async with LocalService(VERIFYING) as service:
        worker = Worker(
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            progress_interval=0.1,
            heartbeat_interval=0.1,
            shutdown_grace=1.0,
        )

        @worker.activity("wg-secrets")
        async def handle(task: Task) -> None:
            await asyncio.sleep(0.15)
            if task.field("command") == "run Fail":
                raise RuntimeError("a handler failure, logged with its trace")

        # The worker first: its connection installs the redaction on botocore's loggers, which
        # then covers every client of the process, the test's own included.
        async with worker, _client(service.endpoint_url) as dp:
            pipeline_id = await start_pipeline(dp, activities("wg-secrets", "A", "B", "Fail"))

            async def ended() -> bool:
                found = await statuses(dp, pipeline_id)
                return len(found) == 3 and all(
                    status in ("FINISHED", "FAILED") for status in found.values()
                )

            await eventually(ended)
            assert (await statuses(dp, pipeline_id)) == {
                "A": "FINISHED",
                "B": "FINISHED",
                "Fail": "FAILED",
            }
    lines = debug_logs.lines
    assert len(lines) > 50  # botocore's request and signing logs were on
    assert any("botocore" in line for line in lines)
    leaks = [
        line
        for line in lines
        if FAKE_ACCESS_KEY in line or FAKE_SECRET_KEY in line or _SIGNATURE.search(line)
    ]
    assert not leaks, leaks[:3]


def test_the_local_service_listens_on_loopback_unless_told_otherwise() -> None:
    assert LocalService().host == "127.0.0.1"
    assert _parser().parse_args([]).host == "127.0.0.1"
    assert LocalConfig().verify_signatures is False
    assert FAKE_SECRET_KEY not in repr(VERIFYING)  # credentials never shown in the config's repr


async def test_signature_verification_is_off_by_default() -> None:
    async with (
        LocalService(LocalConfig(poll_hold=0.1)) as service,
        _client(
            service.endpoint_url, aws_access_key_id="AKIAOTHER", aws_secret_access_key="nope"
        ) as dp,
    ):
        assert (await dp.list_pipelines())["pipelineIdList"] == []


async def test_requests_signed_wrongly_get_the_errors_aws_gives() -> None:
    async with LocalService(VERIFYING) as service:
        endpoint = service.endpoint_url
        async with _client(endpoint) as dp:
            await dp.report_task_runner_heartbeat(taskrunnerId="r", hostname="h")  # signed right
        cases = [
            ({"aws_secret_access_key": "wrong", "aws_access_key_id": FAKE_ACCESS_KEY},
             "InvalidSignatureException"),
            ({"aws_secret_access_key": FAKE_SECRET_KEY, "aws_access_key_id": "AKIAUNKNOWN"},
             "UnrecognizedClientException"),
        ]  # fmt: skip
        for credentials, code in cases:
            async with _client(endpoint, **credentials) as dp:
                with pytest.raises(ClientError) as caught:
                    await dp.poll_for_task(workerGroup="wg", hostname="h")
            assert caught.value.response["Error"]["Code"] == code
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        target = {"X-Amz-Target": "DataPipeline.ListPipelines"}
        stale = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)).strftime(
            "%Y%m%dT%H%M%SZ"
        )
        raw = [
            ({}, 403, "MissingAuthenticationTokenException"),
            ({"Authorization": "AWS4-HMAC-SHA256 Credential=x"}, 400, "IncompleteSignature"),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, 400, "IncompleteSignatureException"),
            (
                {
                    "Authorization": f"AWS4-HMAC-SHA256 Credential={FAKE_ACCESS_KEY}/"
                    f"{stale[:8]}/us-east-1/datapipeline/aws4_request, "
                    f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
                    "X-Amz-Date": stale,
                },
                400,
                "InvalidSignatureException",
            ),
        ]
        async with aiohttp.ClientSession() as http:
            for headers, status, code in raw:
                async with http.post(endpoint, data=b"{}", headers={**target, **headers}) as r:
                    body = await r.json(content_type=None)
                assert r.status == status, body
                assert body["__type"].split("#")[-1].startswith(code), body
                assert FAKE_SECRET_KEY not in str(body)


async def test_a_worker_with_the_wrong_secret_fails_clearly_without_a_hot_loop(
    debug_logs: _Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    async with LocalService(VERIFYING) as service:
        worker = Worker(
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            progress_interval=0.1,
            heartbeat_interval=60,
        )
        ran: list[str] = []

        @worker.activity("wg-wrong-secret")
        async def handle(task: Task) -> None:
            ran.append(task.id)

        async with worker:
            await eventually(lambda: any(" ERROR " in line for line in debug_logs.lines), within=5)
            first = service.stats()["calls"].get("PollForTask", 0)
            await asyncio.sleep(1.0)
            later = service.stats()["calls"].get("PollForTask", 0)
    errors = [line for line in debug_logs.lines if " ERROR " in line]
    assert "InvalidSignatureException" in errors[0]
    assert "credentials" in errors[0]  # says what to check
    assert later - first <= 2  # backs off for long: not a crash loop, not a hot retry loop
    assert not ran


async def test_swf_calls_are_verified_against_their_own_signing_name() -> None:
    async with LocalService(VERIFYING) as service:
        session = get_session()
        config = client_config()
        right = {"aws_access_key_id": FAKE_ACCESS_KEY, "aws_secret_access_key": FAKE_SECRET_KEY}
        async with session.create_client(
            "swf",
            region_name="us-east-1",
            endpoint_url=service.endpoint_url,
            config=config,
            **right,
        ) as swf:
            await swf.register_domain(name="orders", workflowExecutionRetentionPeriodInDays="1")
        wrong = {**right, "aws_secret_access_key": "wrong"}
        async with session.create_client(
            "swf",
            region_name="us-east-1",
            endpoint_url=service.endpoint_url,
            config=config,
            **wrong,
        ) as swf:
            with pytest.raises(ClientError) as caught:
                await swf.register_domain(name="other", workflowExecutionRetentionPeriodInDays="1")
        assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
