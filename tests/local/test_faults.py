"""Switches for testing runners: injected faults, latency, rate limits and the counters."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, HTTPClientError

from pipeworker.local import LocalConfig, LocalService
from tests.helpers import fields_of, start_pipeline
from tests.local.helpers import chain_definition


async def test_error_rate_answers_internal_service_error_on_task_runner_calls_only(
    dp: Any, service: LocalService
) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    service.configure_faults(error_rate=1.0)
    with pytest.raises(ClientError) as caught:
        await dp.poll_for_task(workerGroup="wg-1")
    error = caught.value.response
    assert error["Error"]["Code"] == "InternalServiceError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    # Pipeline calls are not faulted: only the runner's path is under test.
    await dp.describe_pipelines(pipelineIds=[pipeline_id])
    # The failed poll took no effect: the task is still there once faults stop.
    service.configure_faults(error_rate=0.0)
    assert "taskObject" in await dp.poll_for_task(workerGroup="wg-1")
    stats = service.stats()
    assert stats["faults"] == {"error": 1}
    assert stats["calls"]["PollForTask"] == 2
    assert stats["errors"]["InternalServiceError"] == 1


async def test_throttle_rate_is_recognised_and_retried_by_botocore(
    service: LocalService, make_client: Any
) -> None:
    service.configure_faults(throttle_rate=1.0, seed=7)
    client = await make_client(service, retries={"mode": "standard", "total_max_attempts": 2})
    with pytest.raises(ClientError) as caught:
        await client.report_task_runner_heartbeat(taskrunnerId="r1")
    response = caught.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    # botocore classified it as a throttle and retried it: two calls reached the service.
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert service.stats()["calls"]["ReportTaskRunnerHeartbeat"] == 2
    assert service.stats()["faults"] == {"throttle": 2}


async def test_dropped_connection_before_the_call_takes_effect(
    dp: Any, service: LocalService
) -> None:
    await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    service.configure_faults(drop_rate=1.0, drop_after_fraction=0.0)
    with pytest.raises((HTTPClientError, EndpointConnectionError, aiohttp.ClientError)):
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    service.configure_faults(drop_rate=0.0)
    # Not taken: the task still runs, and the status can be sent again.
    assert (await dp.report_task_progress(taskId=task["taskId"]))["canceled"] is False
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert service.stats()["faults"] == {"drop_before": 1}


async def test_dropped_connection_after_the_call_took_effect(
    dp: Any, service: LocalService
) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    service.configure_faults(drop_rate=1.0, drop_after_fraction=1.0)
    with pytest.raises((HTTPClientError, EndpointConnectionError, aiohttp.ClientError)):
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    service.configure_faults(drop_rate=0.0)
    # Taken: the runner's retry of the same status succeeds and the status is kept.
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    attempt = await dp.describe_objects(pipelineId=pipeline_id, objectIds=[task["attemptId"]])
    assert fields_of(attempt["pipelineObjects"][0])["@status"] == "FINISHED"
    assert service.stats()["faults"] == {"drop_after": 1}


async def test_latency_is_added_to_task_runner_calls(dp: Any, service: LocalService) -> None:
    # Long enough that a call without it stays well under it, even on a busy machine.
    service.configure_faults(latency=(0.5, 0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await dp.report_task_runner_heartbeat(taskrunnerId="r1")
    assert loop.time() - started >= 0.5
    started = loop.time()
    await dp.list_pipelines()
    assert loop.time() - started < 0.5


async def test_fault_sequence_is_repeatable_with_a_seed(
    make_service: Any, make_client: Any
) -> None:
    outcomes = []
    for _ in range(2):
        service = await make_service(error_rate=0.5, seed=42)
        dp = await make_client(service)
        codes = []
        for _ in range(12):
            try:
                await dp.report_task_runner_heartbeat(taskrunnerId="r")
                codes.append("ok")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
        outcomes.append(codes)
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {"ok", "InternalServiceError"}


async def test_rate_limits_throttle_beyond_the_burst(make_service: Any, make_client: Any) -> None:
    service = await make_service(rate_limits=True, poll_hold=0.0)
    dp = await make_client(service, max_pool_connections=20)
    answers = await asyncio.gather(
        *(dp.poll_for_task(workerGroup="empty") for _ in range(110)), return_exceptions=True
    )
    throttled = [a for a in answers if isinstance(a, ClientError)]
    # Burst 100 at 2/s: about ten of 110 quick polls are throttled.
    assert 5 <= len(throttled) <= 10
    assert {a.response["Error"]["Code"] for a in throttled} == {"ThrottlingException"}
    assert service.stats()["throttled"]["PollForTask"] == len(throttled)
    # Other operations have their own buckets.
    await dp.report_task_runner_heartbeat(taskrunnerId="r")
    service.configure_faults(rate_limits=False)
    await dp.poll_for_task(workerGroup="empty")


async def test_control_calls_over_http(service: LocalService, raw: Any, dp: Any) -> None:
    status, body = await raw(
        "PipeworkerLocal.ConfigureFaults", {"errorRate": 1.0, "latencyMinMs": 0}
    )
    assert (status, body) == (200, {})
    status, body = await raw("DataPipeline.ReportTaskRunnerHeartbeat", {"taskrunnerId": "r9"})
    assert status == 500
    assert body["__type"].endswith("#InternalServiceError")
    await raw("PipeworkerLocal.ConfigureFaults", {"errorRate": 0.0})
    assert (await raw("PipeworkerLocal.TerminateTaskRunner", {"taskrunnerId": "r9"}))[0] == 200
    assert (await dp.report_task_runner_heartbeat(taskrunnerId="r9"))["terminate"] is True
    status, stats = await raw("PipeworkerLocal.GetStats", {})
    assert status == 200
    assert stats["faults"] == {"error": 1}
    assert stats["calls"]["ReportTaskRunnerHeartbeat"] == 2
    assert stats["settings"]["errorRate"] == 0.0
    assert (await raw("PipeworkerLocal.ResetStats", {}))[0] == 200
    assert service.stats()["calls"] == {}


async def test_control_calls_reject_bad_settings(raw: Any) -> None:
    for body in (
        {"errorRate": 2},
        {"errorRate": 0.6, "throttleRate": 0.6},
        {"latencyMinMs": 30, "latencyMaxMs": 10},
        {"rateLimits": "yes"},
        {"bogus": 1},
    ):
        status, answer = await raw("PipeworkerLocal.ConfigureFaults", body)
        assert status == 400, body
        assert answer["__type"].endswith("#InvalidRequestException")
    status, answer = await raw("PipeworkerLocal.TerminateTaskRunner", {})
    assert status == 400
    status, answer = await raw("PipeworkerLocal.Nope", {})
    assert answer["__type"].endswith("#UnknownOperationException")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"poll_hold": -1.0}, "poll_hold"),
        ({"ack_timeout": float("nan")}, "ack_timeout"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": 0.7, "drop_rate": 0.7}, "must not exceed 1"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"latency_min": 0.2, "latency_max": 0.1}, "latency_max"),
    ],
)
def test_config_rejects_bad_values(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalConfig(**settings)
