"""Fixtures for the Step Functions tests: the local service, boto3's ``stepfunctions`` client
(run in threads, as the service shares the test's event loop) and workers pointed at it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import pytest

from pipeworker import StepFunctions, Worker
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import client_config, eventually

__all__ = ["ROLE", "Sfn", "machine", "task_state"]

ROLE = "arn:aws:iam::123456789012:role/local"
SCALE = 0.1
"""The local service's time_scale here: a state's HeartbeatSeconds of 3 lasts 0.3 s."""


@pytest.fixture(autouse=True)
def _isolated(fake_credentials: None, no_backoff: None) -> None:
    """Fake AWS credentials and retries without backoff."""


class Sfn:
    """boto3's stepfunctions client, each call in a thread: ``await sfn.start_execution(...)``."""

    def __init__(self, service: LocalService, **credentials: str) -> None:
        self.service = service
        # A session of its own: boto3's default one keeps the credentials it first found.
        self.client = boto3.Session(**credentials).client(
            "stepfunctions",
            endpoint_url=service.endpoint_url,
            region_name="us-east-1",
            config=client_config(read_timeout=75),
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(**params: Any) -> Any:
            return await asyncio.to_thread(method, **params)

        return call

    async def activity(self, name: str) -> str:
        """Create activity *name*; its ARN."""
        return str((await self.create_activity(name=name))["activityArn"])

    async def machine(self, name: str, definition: dict[str, Any]) -> str:
        """Create a state machine; its ARN."""
        answer = await self.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=ROLE
        )
        return str(answer["stateMachineArn"])

    async def start(self, machine_arn: str, data: Any = None, name: str | None = None) -> str:
        """Start an execution with *data* as its input; its ARN."""
        params: dict[str, Any] = {"stateMachineArn": machine_arn, "input": json.dumps(data or {})}
        if name is not None:
            params["name"] = name
        return str((await self.start_execution(**params))["executionArn"])

    def status(self, execution_arn: str) -> str:
        """The execution's status, read from the service's memory (for eventually())."""
        return self.service.sfn.executions[execution_arn].status

    async def finished(self, *arns: str, within: float = 20.0) -> list[dict[str, Any]]:
        """Wait until every execution has left RUNNING; their DescribeExecution answers."""
        await eventually(lambda: all(self.status(arn) != "RUNNING" for arn in arns), within)
        return [await self.describe_execution(executionArn=arn) for arn in arns]

    async def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of the execution, oldest first."""
        answer = await self.get_execution_history(executionArn=execution_arn, maxResults=1000)
        return list(answer["events"])


def task_state(activity_arn: str, **fields: Any) -> dict[str, Any]:
    """A Task state on *activity_arn*, ``End: true`` unless *fields* say otherwise."""
    state: dict[str, Any] = {"Type": "Task", "Resource": activity_arn}
    state.update(fields)
    if "Next" not in state:
        state["End"] = True
    return state


def machine(**states: dict[str, Any]) -> dict[str, Any]:
    """A definition of *states*, starting at the first."""
    return {"StartAt": next(iter(states)), "States": states}


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """A local service with a short poll hold and definitions' durations x0.1."""
    async with LocalService(LocalConfig(poll_hold=0.5, time_scale=SCALE)) as running:
        yield running


@pytest.fixture
async def sfn(service: LocalService) -> Sfn:
    return Sfn(service)


@pytest.fixture(params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports: every worker test runs on each."""
    return str(request.param)


@pytest.fixture
def make_worker(service: LocalService, transport: str) -> Callable[..., Worker]:
    """``make_worker(service_settings={...}, **worker_settings)``: a Step Functions worker for
    the local service on the transport under test, heartbeats every 0.2 s."""

    def make(service_settings: dict[str, Any] | None = None, **settings: Any) -> Worker:
        defaults: dict[str, Any] = {
            "service": StepFunctions(transport=transport, **(service_settings or {})),  # type: ignore[arg-type]
            "endpoint_url": service.endpoint_url,
            "region": "us-east-1",
            "progress_interval": 0.2,
            "shutdown_grace": 1.0,
            "max_concurrency": 4,
        }
        return Worker(**{**defaults, **settings})

    return make
