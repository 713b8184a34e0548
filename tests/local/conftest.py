"""Fixtures for the local service's tests: a running service and clients with fake credentials.

``service``, ``make_service`` and the ``dp`` client are the shared ones (``tests/conftest.py``).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.session import get_session

from pipeworker.local import LocalService
from tests.helpers import client_config, fake_aws_environment


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unlike the other suites, with a session token: the service must accept temporary ones.
    fake_aws_environment(monkeypatch, session_token="testing")


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[[LocalService], Any]]:
    """``await make_client(service)``: an aiobotocore client for another service."""
    session = get_session()
    contexts: list[Any] = []

    async def make(target: LocalService, **config: Any) -> Any:
        context = session.create_client(
            "datapipeline",
            region_name="us-east-1",
            endpoint_url=target.endpoint_url,
            config=client_config(**config),
        )
        contexts.append(context)
        return await context.__aenter__()

    yield make
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


@pytest.fixture
def boto3_client(service: LocalService) -> Iterator[Any]:
    """A boto3 Data Pipeline client pointed at the service (for calls made in a thread)."""
    client = boto3.client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=client_config(),
    )
    yield client
    client.close()


@pytest.fixture
async def raw(service: LocalService) -> AsyncIterator[Callable[..., Any]]:
    """Unsigned raw calls: ``await raw(target, body)`` -> (status, json)."""
    async with aiohttp.ClientSession() as session:

        async def call(
            target: str | None, body: Any = None, *, data: bytes | None = None
        ) -> tuple[int, Any]:
            headers = {"Content-Type": "application/x-amz-json-1.1"}
            if target is not None:
                headers["X-Amz-Target"] = target
            payload = data if data is not None else json.dumps(body or {}).encode()
            # A BytesIO, because aiohttp warns about large raw bodies (the 20 MB expression case).
            stream = io.BytesIO(payload)
            async with session.post(service.endpoint_url, data=stream, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)

        yield call
