"""Hostile requests to the local service: schemathesis against the seed's swagger, query form.

``swagger_task_runner.yaml`` is the seed's Swagger 2.0 description of the five task-runner calls
(``GET /?Action=PollForTask&workerGroup=...``), copied verbatim. Its paths carry the query string,
which OpenAPI tools cannot route, so it is transformed at load time: each ``/?Action=X`` becomes
``/X`` with a required ``Action`` query parameter fixed to ``X``, and each request schemathesis
generates is sent to ``/`` (the query form the local service answers) with its query unchanged.

With fault injection off, no generated request (missing, empty, oversized or non-JSON
parameters, odd characters) may get a 5xx; with ``error_rate=1`` every call is a 500, and the
same check must fail, so the check is not vacuous.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from pipeworker.local import LocalConfig, LocalService
from tests.reliability.conftest import report

SWAGGER = Path(__file__).with_name("swagger_task_runner.yaml")
ACTIONS = (
    "PollForTask",
    "ReportTaskProgress",
    "SetTaskStatus",
    "EvaluateExpression",
    "ReportTaskRunnerHeartbeat",
)

pytestmark = pytest.mark.timeout(60)


def routable(seed: dict[str, Any]) -> dict[str, Any]:
    """The seed with ``/?Action=X`` paths as ``/X`` plus a required ``Action=X`` parameter."""
    paths: dict[str, Any] = {}
    for path, methods in seed["paths"].items():
        action = path.partition("?Action=")[2]
        assert action in ACTIONS, path
        paths[f"/{action}"] = {
            method: {
                **operation,
                "parameters": [
                    {
                        "in": "query",
                        "name": "Action",
                        "type": "string",
                        "enum": [action],
                        "required": True,
                    },
                    *operation.get("parameters", []),
                ],
            }
            for method, operation in methods.items()
        }
    return {**seed, "paths": paths}


def load_schema() -> Any:
    documents = [doc for doc in yaml.safe_load_all(SWAGGER.read_text()) if doc]
    return schemathesis.openapi.from_dict(routable(documents[0]))


class Running:
    """The local service on 127.0.0.1 in a thread of its own, for schemathesis' blocking calls."""

    def __init__(self) -> None:
        self.service = LocalService(LocalConfig(poll_hold=0.02, seed=7))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.statuses: Counter[int] = Counter()

    def __enter__(self) -> Running:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.service.stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def configure_faults(self, **settings: Any) -> None:
        self._loop.call_soon_threadsafe(lambda: self.service.configure_faults(**settings))

    def send(self, case: Any, session: requests.Session) -> Any:
        """Send *case* in the query form: ``GET /?Action=X&...``; check it with schemathesis."""
        kwargs = case.as_transport_kwargs(base_url=self.service.endpoint_url)
        scheme, netloc, _, query, fragment = urlsplit(kwargs["url"])
        kwargs["url"] = urlunsplit((scheme, netloc, "/", query, fragment))
        kwargs.setdefault("timeout", 10)
        response = session.request(**kwargs)
        self.statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
        return response


@pytest.fixture(scope="module")
def local() -> Iterator[Running]:
    with Running() as running:
        yield running
    report(
        "schemathesis: local service statuses "
        + ", ".join(f"{status} x{n}" for status, n in sorted(running.statuses.items()))
    )


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as opened:
        opened.trust_env = False  # 127.0.0.1 only: no proxy from the environment
        yield opened


SCHEMA = load_schema()


@pytest.mark.parametrize("action", ACTIONS)
def test_no_generated_request_gets_a_server_error(
    action: str, local: Running, session: requests.Session
) -> None:
    operation = SCHEMA[f"/{action}"]["GET"]

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = local.send(case, session)
        assert response.headers["Content-Type"].startswith("application/x-amz-json")

    check()


def test_the_check_fails_when_faults_are_injected(
    local: Running, session: requests.Session
) -> None:
    # Not vacuous: with every task-runner call answered InternalServiceError, the same
    # requests fail the very check the other tests pass.
    operation = SCHEMA["/ReportTaskRunnerHeartbeat"]["GET"]
    case = operation.Case(
        query={"Action": "ReportTaskRunnerHeartbeat", "taskrunnerId": "r1", "hostname": "h"}
    )
    local.send(case, session)  # answered without a 5xx while faults are off
    local.configure_faults(error_rate=1.0)
    try:
        with pytest.raises((AssertionError, FailureGroup)) as failed:
            local.send(case, session)
        assert "500" in str(failed.value) or "Server error" in str(failed.value)
    finally:
        local.configure_faults(error_rate=0.0)
