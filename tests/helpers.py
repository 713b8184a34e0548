"""Plain helpers shared by the suites: fake AWS settings, pipeline definitions, waiting.

Fixtures built on them live in ``tests/conftest.py``; each directory's ``conftest.py`` says which
of them apply to it, and with what differences.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from botocore.config import Config

from pipeworker import DataPipeline
from pipeworker.local import LocalConfig, LocalService
from pipeworker.services.base import Connection, ConnectionSettings, ReceivedTask

__all__ = [
    "FAST",
    "activities",
    "attempts",
    "by_component",
    "calls",
    "client_config",
    "eventually",
    "fake_aws_environment",
    "fields_of",
    "instances",
    "obj",
    "ref",
    "start_pipeline",
    "statuses",
]

FAST = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)
"""The local service's short time rules: 0.3 s poll hold, definitions' durations x0.001."""


def fake_aws_environment(
    env: pytest.MonkeyPatch,
    *,
    access_key: str = "testing",
    secret_key: str = "testing",
    session_token: str | None = None,
    config_file: str = "/nonexistent",
    credentials_file: str = "/nonexistent",
) -> None:
    """Fake credentials and region, and nothing read from the machine's AWS settings."""
    env.setenv("AWS_ACCESS_KEY_ID", access_key)
    env.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.delenv(name, raising=False)
    if session_token is not None:
        env.setenv("AWS_SESSION_TOKEN", session_token)
    env.setenv("AWS_CONFIG_FILE", config_file)
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", credentials_file)
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client_config(**extra: Any) -> Config:
    """No botocore retries (tests see every answer) and a read timeout above the poll hold."""
    settings: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "read_timeout": 10}
    settings.update(extra)
    return Config(**settings)


def obj(object_id: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A wire pipeline object; a value ``ref("x")`` is a reference, a list gives several values."""
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


def by_component(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Attempts (as :func:`attempts` returns them) by the name of their activity."""
    return {a["@instanceParent"]["ref"].split("_")[0][1:]: a for a in found}


async def start_pipeline(dp: Any, objects: list[dict[str, Any]], **put: Any) -> str:
    """Create, define and activate a pipeline; return its id."""
    created = await dp.create_pipeline(name="p", uniqueId=f"u-{id(objects)}")
    pipeline_id: str = created["pipelineId"]
    answer = await dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=objects, **put
    )
    assert not answer["errored"], answer
    await dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def fields_of(wire_object: dict[str, Any]) -> dict[str, Any]:
    """Wire fields as key -> value (string or ``{"ref": id}``), the last value of a key winning."""
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


class CountingPolls(DataPipeline):
    """Data Pipeline, counting polls in flight (per worker group and in all), the most seen, and
    the most polls plus running handlers when a poll starts (the test's handlers keep
    :attr:`running`)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.by_group: dict[str, int] = {}
        self.peak_by_group: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.running = 0
        self.busiest = 0

    def connect(self, settings: ConnectionSettings) -> AbstractAsyncContextManager[Connection]:
        return self._counting(super().connect(settings))

    @asynccontextmanager
    async def _counting(
        self, inner: AbstractAsyncContextManager[Connection]
    ) -> AsyncIterator[Connection]:
        async with inner as connection:
            poll = connection.poll

            async def counted(queue: str) -> ReceivedTask | None:
                self.by_group[queue] = self.by_group.get(queue, 0) + 1
                self.peak_by_group[queue] = max(
                    self.peak_by_group.get(queue, 0), self.by_group[queue]
                )
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.busiest = max(self.busiest, self.in_flight + self.running)
                try:
                    return await poll(queue)
                finally:
                    self.by_group[queue] -= 1
                    self.in_flight -= 1

            connection.poll = counted  # type: ignore[method-assign]
            yield connection
