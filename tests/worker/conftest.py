"""Fixtures for the worker's tests: the local service, a client, and workers pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker import DataPipeline, Worker, _retry
from pipeworker.local import LocalConfig, LocalService

FAST = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """The local service with short time rules (0.3 s poll hold, definitions x0.001)."""
    async with LocalService(FAST) as running:
        yield running


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore client for creating pipelines and inspecting them (no retries)."""
    config = Config(retries={"total_max_attempts": 1}, read_timeout=10)
    async with get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url, config=config
    ) as client:
        yield client


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Awaitable[LocalService]]]:
    """``await make_service(**rules)``: another local service, FAST's rules overridden."""
    started: list[LocalService] = []

    async def make(**rules: Any) -> LocalService:
        settings = {
            "poll_hold": FAST.poll_hold,
            "ack_timeout": FAST.ack_timeout,
            "time_scale": FAST.time_scale,
            **rules,
        }
        running = LocalService(LocalConfig(**settings))
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture(params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports of the Data Pipeline service: every worker test runs on each."""
    return str(request.param)


@pytest.fixture
def make_worker(service: LocalService, transport: str) -> Callable[..., Worker]:
    """``make_worker(cls=Worker, **settings)``: a worker for the local service, short intervals,
    on the transport under test unless a service is given."""

    def make(cls: type[Worker] = Worker, **settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": DataPipeline(transport=transport),  # type: ignore[arg-type]
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.2,
            "heartbeat_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return cls(**{**defaults, **settings})

    return make


def obj(object_id: str, **fields: Any) -> dict[str, Any]:
    """A pipeline object; a value ``ref("x")`` is a reference, a list gives several values."""
    wire = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                wire.append({"key": key, "refValue": item["ref"]})
            else:
                wire.append({"key": key, "stringValue": item})
    return {"id": object_id, "name": object_id, "fields": wire}


def ref(object_id: str) -> dict[str, str]:
    """A reference value for :func:`obj`."""
    return {"ref": object_id}


def activities(group: str, *names: str, **default_fields: Any) -> list[dict[str, Any]]:
    """An on-demand pipeline: ``Default`` (worker group, no retries) and independent activities."""
    return [
        obj(
            "Default",
            scheduleType="ondemand",
            workerGroup=group,
            maximumRetries="0",
            **default_fields,
        ),
        *(obj(name, type="ShellCommandActivity", command=f"run {name}") for name in names),
    ]


async def start_pipeline(dp: Any, objects: list[dict[str, Any]]) -> str:
    """Create, define and activate a pipeline; return its id."""
    created = await dp.create_pipeline(name="p", uniqueId=f"u-{id(objects)}")
    pipeline_id: str = created["pipelineId"]
    answer = await dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=objects)
    assert not answer["errored"], answer
    await dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def fields_of(wire_object: dict[str, Any]) -> dict[str, Any]:
    """Wire fields as key -> value (string or ``{"ref": id}``), the last value winning."""
    result: dict[str, Any] = {}
    for field in wire_object["fields"]:
        value = field.get("stringValue")
        result[field["key"]] = value if value is not None else {"ref": field["refValue"]}
    return result


async def instances(dp: Any, pipeline_id: str) -> dict[str, dict[str, Any]]:
    """Each activity's instance fields, by component id."""
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    if not ids:
        return {}
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    result = {}
    for wire in described["pipelineObjects"]:
        fields = fields_of(wire)
        result[fields["@componentParent"]["ref"]] = fields
    return result


async def attempts(dp: Any, pipeline_id: str) -> list[dict[str, Any]]:
    """Every attempt's fields."""
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="ATTEMPT"))["ids"]
    if not ids:
        return []
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return [fields_of(wire) for wire in described["pipelineObjects"]]


async def statuses(dp: Any, pipeline_id: str) -> dict[str, str]:
    """Each activity's instance status, by component id."""
    return {name: fields["@status"] for name, fields in (await instances(dp, pipeline_id)).items()}


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 10.0
) -> None:
    """Wait until *check* is true, polling every 20 ms; fail after *within* seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


def calls(service: LocalService, operation: str) -> int:
    """How many times the local service was called with *operation*."""
    return int(service.stats()["calls"].get(operation, 0))
