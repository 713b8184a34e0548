"""Fixtures for the local service's tests: a running service and clients with fake credentials."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker.local import LocalConfig, LocalService

FAST = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """A running service with short time rules (0.3 s poll hold, definitions x0.001)."""
    async with LocalService(FAST) as running:
        yield running


def client_config(**extra: Any) -> Config:
    """No botocore retries (tests see every answer) and a read timeout above the poll hold."""
    settings: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "read_timeout": 10}
    settings.update(extra)
    return Config(**settings)


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Any]]:
    """``await make_service(**config)``: another running service, with FAST's rules overridden."""
    started: list[LocalService] = []

    async def make(**overrides: Any) -> LocalService:
        settings = {
            "poll_hold": FAST.poll_hold,
            "ack_timeout": FAST.ack_timeout,
            "time_scale": FAST.time_scale,
            **overrides,
        }
        running = LocalService(LocalConfig(**settings))
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


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
async def dp(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore Data Pipeline client pointed at the service."""
    session = get_session()
    async with session.create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=client_config(),
    ) as client:
        yield client


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


def obj(object_id: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A wire pipeline object; a field value ``Ref("x")``-like dict ``{"ref": "x"}`` is a ref."""
    wire = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                wire.append({"key": key, "refValue": item["ref"]})
            else:
                wire.append({"key": key, "stringValue": item})
    return {"id": object_id, "name": name or object_id, "fields": wire}


def ref(object_id: str) -> dict[str, str]:
    """A reference value for :func:`obj`."""
    return {"ref": object_id}
