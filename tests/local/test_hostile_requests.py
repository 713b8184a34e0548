"""Hostile requests to the local service: AWS-shaped 4xx answers, no traceback, and it goes on.

Bodies over the cap, gzip bombs and JSON nested past the recursion limit used to answer 500 with a
server traceback; malformed HTTP was answered in plain text. Each is sent raw (aiohttp or a bare
socket) to a real service on 127.0.0.1, and a normal call must succeed right after.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
from typing import Any

import aiohttp
import pytest

from pipeworker.local import LocalService
from pipeworker.local._http import MAX_BODY_BYTES, MAX_JSON_DEPTH

HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "DataPipeline.ListPipelines",
}


async def post(service: LocalService, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    # A fresh connection per call: an answer that closes its connection must not fail the next.
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            service.endpoint_url, data=io.BytesIO(body), headers={**HEADERS, **headers}
        ) as response,
    ):
        assert response.content_type == "application/x-amz-json-1.1"
        return response.status, json.loads(await response.read())


async def still_works(service: LocalService) -> None:
    status, answer = await post(service, b"{}")
    assert status == 200
    assert answer == {"pipelineIdList": [], "hasMoreResults": False}


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not logged, [r.getMessage() for r in logged]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="pipeworker")


async def test_a_body_over_the_cap_is_413(
    service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    status, answer = await post(service, b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert status == 413
    assert answer["__type"].endswith("#RequestEntityTooLargeException")
    assert "32 MiB" in answer["message"]
    no_traceback(caplog)
    await still_works(service)


async def test_a_gzip_bomb_is_413_after_at_most_the_cap(
    service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 KB on the wire, 200 MB inflated: the service stops inflating at the cap.
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    status, answer = await post(service, bomb, **{"Content-Encoding": "gzip"})
    assert status == 413
    assert answer["__type"].endswith("#RequestEntityTooLargeException")
    no_traceback(caplog)
    await still_works(service)


async def test_a_small_gzip_body_is_read(service: LocalService) -> None:
    status, answer = await post(service, gzip.compress(b"{}"), **{"Content-Encoding": "gzip"})
    assert status == 200
    assert answer["pipelineIdList"] == []


async def test_a_body_that_is_not_gzip_is_a_serialization_error(
    service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    status, answer = await post(service, b"not gzip at all", **{"Content-Encoding": "gzip"})
    assert status == 400
    assert answer["__type"].endswith("#SerializationException")
    assert "gzip" in answer["message"]
    no_traceback(caplog)
    await still_works(service)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # past the interpreter's recursion limit
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"pipelineId": ' + b"[" * 900 + b"]" * 900 + b"}",  # parses, but no request nests so
    ],
    ids=["lists", "objects", "under-the-recursion-limit"],
)
async def test_deeply_nested_json_is_a_serialization_error(
    service: LocalService, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    status, answer = await post(service, body)
    assert status == 400
    assert answer["__type"].endswith("#SerializationException")
    assert f"deeper than {MAX_JSON_DEPTH}" in answer["message"]
    no_traceback(caplog)
    await still_works(service)


async def test_deeply_nested_json_in_the_query_form_is_a_serialization_error(
    service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    fields = "[" * 1200 + "]" * 1200  # past the recursion limit, under the URL limit
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            service.endpoint_url,
            params={"Action": "ReportTaskProgress", "taskId": "t", "fields": fields},
        ) as response,
    ):
        assert response.status == 400
        answer = await response.json(content_type=None)
    assert answer["__type"].endswith("#SerializationException")
    no_traceback(caplog)
    await still_works(service)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["garbage", "tls", "bad-length", "bad-chunk", "huge-header"],
)
async def test_malformed_http_is_answered_with_json(
    service: LocalService, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.split()[1].startswith(b"4"), raw[:300]
    assert b"Content-Type: application/x-amz-json-1.1" in head
    answer = json.loads(body)
    assert set(answer) == {"__type", "message"}
    assert answer["__type"].endswith("#BadRequestException")
    assert answer["message"].startswith("Malformed HTTP request")
    no_traceback(caplog)
    await still_works(service)
