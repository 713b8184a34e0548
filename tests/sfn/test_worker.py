"""A Step Functions worker against the local service, driven by boto3's stepfunctions client:
outputs, Retry and Catch, heartbeat timeouts, StopExecution, and faults, on both transports."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import (
    BaseTask,
    CancelReason,
    ConfigurationError,
    StepFunctions,
    TaskFailed,
    Worker,
)
from pipeworker.local import LocalService
from pipeworker.services.stepfunctions import StepFunctionsTask

from .conftest import Sfn, machine, task_state

MakeWorker = Callable[..., Worker]


def calls(service: LocalService, operation: str) -> int:
    return int(service.stats()["calls"].get(operation, 0))


def events(history: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    key = kind[0].lower() + kind[1:] + "EventDetails"
    return [event.get(key, {}) for event in history if event["type"] == kind]


async def test_success_with_the_output_in_describe_execution(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("resize")
    definition = machine(
        Prepare={"Type": "Pass", "Parameters": {"image.$": "$.file"}, "Next": "Resize"},
        Resize=task_state(arn, HeartbeatSeconds=30, ResultPath="$.result"),
    )
    state_machine = await sfn.machine("images", definition)
    seen: list[tuple[Any, str, str]] = []
    worker = make_worker()

    @worker.activity(arn)
    async def resize(task: StepFunctionsTask) -> dict[str, Any]:
        seen.append((task.input, task.raw_input, task.activity_arn))
        await task.heartbeat()  # an explicit beat on top of the automatic ones
        return {"resized": task.input["image"], "note": "ünïcode"}

    async with worker:
        execution = await sfn.start(state_machine, {"file": "cat.png"})
        (described,) = await sfn.finished(execution)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {
        "image": "cat.png",
        "result": {"resized": "cat.png", "note": "ünïcode"},
    }
    assert seen == [({"image": "cat.png"}, '{"image":"cat.png"}', arn)]
    history = await sfn.history(execution)
    (started,) = events(history, "ActivityStarted")
    assert started["workerName"] == f"{os.getpid()}@{worker.config.hostname}"
    assert [e["type"] for e in history][-1] == "ExecutionSucceeded"


async def test_a_bare_activity_name_is_resolved_once_and_never_created_unasked(
    sfn: Sfn, service: LocalService, make_worker: MakeWorker
) -> None:
    from pipeworker import ConfigurationError

    missing = make_worker()

    @missing.activity("nonexistent")
    async def never(task: StepFunctionsTask) -> None: ...

    with pytest.raises(ConfigurationError, match="'nonexistent' does not exist"):
        async with missing:
            pass
    assert "arn:aws:states:us-east-1:123456789012:activity:nonexistent" not in (
        service.sfn.activities
    )

    created = make_worker(service_settings={"create_activities": True})

    @created.activity("thumbnail")
    async def thumbnail(task: StepFunctionsTask) -> str:
        return "ok"

    async with created:
        arn = "arn:aws:states:us-east-1:123456789012:activity:thumbnail"
        assert arn in service.sfn.activities
        state_machine = await sfn.machine("thumbs", machine(T=task_state(arn)))
        (described,) = await sfn.finished(await sfn.start(state_machine))
    assert described["output"] == '"ok"'


async def test_a_custom_error_caught_by_retry_then_succeeding(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("flaky")
    retry = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    state_machine = await sfn.machine("retrying", machine(Work=task_state(arn, Retry=retry)))
    attempts: list[int] = []
    worker = make_worker()

    @worker.activity(arn)
    async def flaky(task: StepFunctionsTask) -> dict[str, int]:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise TaskFailed("Flaky", "the first attempt fails")
        return {"attempts": len(attempts)}

    async with worker:
        execution = await sfn.start(state_machine)
        (described,) = await sfn.finished(execution)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"attempts": 2}
    history = await sfn.history(execution)
    assert events(history, "ActivityFailed") == [
        {"error": "Flaky", "cause": "the first attempt fails"}
    ]
    assert len(events(history, "ActivityScheduled")) == 2


async def test_a_custom_error_routed_by_catch(sfn: Sfn, make_worker: MakeWorker) -> None:
    arn = await sfn.activity("convert")
    catch = [{"ErrorEquals": ["UnsupportedFormat"], "Next": "Skip", "ResultPath": "$.error"}]
    definition = machine(
        Convert=task_state(arn, Catch=catch, Next="Done"),
        Skip={"Type": "Pass", "Result": "skipped", "ResultPath": "$.outcome", "End": True},
        Done={"Type": "Succeed"},
    )
    state_machine = await sfn.machine("converting", definition)
    worker = make_worker()

    @worker.activity(arn)
    async def convert(task: StepFunctionsTask) -> None:
        if task.input["image"].endswith(".gif"):
            raise TaskFailed("UnsupportedFormat", "gifs are not resized")

    async with worker:
        execution = await sfn.start(state_machine, {"image": "a.gif"})
        (described,) = await sfn.finished(execution)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {
        "image": "a.gif",
        "error": {"Error": "UnsupportedFormat", "Cause": "gifs are not resized"},
        "outcome": "skipped",
    }


async def test_unexpected_exceptions_and_bad_outputs_fail_with_clear_errors(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("mixed")
    state_machine = await sfn.machine("mixed", machine(Work=task_state(arn)))
    worker = make_worker()

    @worker.activity(arn)
    async def mixed(task: StepFunctionsTask) -> Any:
        kind = task.input["kind"]
        if kind == "raise":
            raise ValueError("x" * 40_000)
        if kind == "object":
            return object()
        if kind == "nan":
            return float("nan")
        if kind == "huge":
            return "y" * 262_144  # 262,146 bytes once quoted
        if kind == "long-error":
            raise TaskFailed("E" * 300, "c" * 40_000)
        return None

    kinds = ["raise", "object", "nan", "huge", "long-error", "none"]
    async with worker:
        executions = [await sfn.start(state_machine, {"kind": kind}) for kind in kinds]
        described = dict(zip(kinds, await sfn.finished(*executions), strict=True))

    raised = described["raise"]
    assert raised["status"] == "FAILED"
    assert raised["error"] == "ValueError"
    cause = raised["cause"]
    shape = (len(cause) <= 32_768, cause[:3], "Traceback" in cause, "raise ValueError" in cause)
    assert shape == (True, "xxx", True, True)
    assert described["object"]["error"] == "ResultNotSerializable"
    assert described["object"]["cause"].startswith("object: ")
    assert described["nan"]["error"] == "ResultNotSerializable"
    assert described["huge"]["error"] == "ResultTooLarge"
    assert "262146 bytes" in described["huge"]["cause"]
    assert len(described["long-error"]["error"]) == 256
    assert len(described["long-error"]["cause"]) == 32_768
    assert described["none"]["status"] == "SUCCEEDED"
    assert described["none"]["output"] == "null"


async def test_a_heartbeat_timeout_cancels_the_handler_and_the_execution_takes_its_timeout_path(
    sfn: Sfn, service: LocalService, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("slow")
    catch = [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut", "ResultPath": "$.error"}]
    # HeartbeatSeconds 3 lasts 0.3 s here; the worker beats only every second.
    definition = machine(
        Slow=task_state(arn, HeartbeatSeconds=3, Catch=catch),
        TimedOut={"Type": "Pass", "Result": "took the timeout path", "End": True},
    )
    state_machine = await sfn.machine("slow", definition)
    cancelled = asyncio.Event()
    reasons: list[str | None] = []
    worker = make_worker(progress_interval=1.0)

    @worker.activity(arn)
    async def slow(task: StepFunctionsTask) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            assert task.cancel_reason is CancelReason.LEASE_LOST
            reasons.append(str(exc.args[0]))  # the cancellation's message says why
            cancelled.set()
            raise
        return "never"

    async with worker:
        execution = await sfn.start(state_machine)
        (described,) = await sfn.finished(execution)
        await asyncio.wait_for(cancelled.wait(), 10)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == "took the timeout path"
    (timed_out,) = events(await sfn.history(execution), "ActivityTimedOut")
    assert timed_out["error"] == "States.Timeout"
    (reason,) = reasons
    assert reason is not None
    assert "lease lost" in reason
    assert "TaskTimedOut" in reason
    assert calls(service, "SendTaskSuccess") == calls(service, "SendTaskFailure") == 0


async def test_stop_execution_cancels_a_running_handler_within_one_heartbeat(
    sfn: Sfn, service: LocalService, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("long")
    state_machine = await sfn.machine("long", machine(Long=task_state(arn, HeartbeatSeconds=60)))
    started = asyncio.Event()
    beats_at_cancel: list[int] = []
    cancelled = asyncio.Event()
    worker = make_worker(progress_interval=1.0)

    @worker.activity(arn)
    async def long(task: StepFunctionsTask) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            beats_at_cancel.append(calls(service, "SendTaskHeartbeat"))
            cancelled.set()
            raise

    async with worker:
        execution = await sfn.start(state_machine)
        await asyncio.wait_for(started.wait(), 10)
        await sfn.stop_execution(executionArn=execution, error="Operator", cause="not needed")
        beats_at_stop = calls(service, "SendTaskHeartbeat")
        await asyncio.wait_for(cancelled.wait(), 10)

    # Counted in heartbeats, not seconds (a busy machine stretches seconds): the first beat
    # the service received after the stop is the one that cancelled the handler.
    assert beats_at_cancel[0] - beats_at_stop == 1
    (described,) = await sfn.finished(execution)
    assert described["status"] == "ABORTED"
    assert (described["error"], described["cause"]) == ("Operator", "not needed")
    assert calls(service, "SendTaskSuccess") == calls(service, "SendTaskFailure") == 0


async def test_200_tasks_under_30_percent_faults_none_lost_none_run_twice(
    sfn: Sfn, service: LocalService, make_worker: MakeWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeworker")
    arn = await sfn.activity("work")
    # A task handed to a poll whose answer was dropped waits for its heartbeat timeout (3 s
    # here: room for a busy machine between beats every 0.2 s), then the Retry gives it to a
    # worker again, as on AWS.
    retry = [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 20}]
    state_machine = await sfn.machine(
        "work", machine(Work=task_state(arn, HeartbeatSeconds=30, Retry=retry))
    )
    runs: Counter[int] = Counter()
    worker = make_worker(max_concurrency=32, progress_interval=0.2)

    @worker.activity(arn)
    async def work(task: StepFunctionsTask) -> dict[str, int]:
        runs[task.input["n"]] += 1
        await asyncio.sleep(0.01)
        return {"n": task.input["n"]}

    executions = [await sfn.start(state_machine, {"n": n}) for n in range(200)]
    service.configure_faults(error_rate=0.1, throttle_rate=0.1, drop_rate=0.1, seed=13)
    async with worker:
        await sfn.finished(*executions, within=120)
    service.configure_faults(error_rate=0, throttle_rate=0, drop_rate=0)

    outputs = [service.sfn.executions[arn] for arn in executions]
    assert [e.status for e in outputs] == ["SUCCEEDED"] * 200
    assert [json.loads(e.output or "null") for e in outputs] == [{"n": n} for n in range(200)]
    assert sorted(runs) == list(range(200))
    assert set(runs.values()) == {1}  # every handler ran exactly once
    stats = service.stats()
    assert sum(stats["faults"].values()) > 100
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    # SendTask* dropped after they landed: the retry's TaskTimedOut is an INFO, not a loss.
    assert any(
        level == logging.INFO and "answered TaskTimedOut on a retry" in text
        for level, text in messages
    )
    assert not [text for _, text in messages if "before its" in text and "status landed" in text]


async def test_heartbeat_seconds_per_activity_keep_a_sync_handler_alive(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("sync")
    # HeartbeatSeconds 3 lasts 0.3 s here: declared as such, the worker beats every 0.1 s,
    # although its own progress_interval is 5 s.
    state_machine = await sfn.machine("sync", machine(Work=task_state(arn, HeartbeatSeconds=3)))
    worker = make_worker(service_settings={"heartbeat_seconds": {arn: 0.3}}, progress_interval=5)

    @worker.activity(arn)
    def work(task: StepFunctionsTask) -> dict[str, bool]:
        time.sleep(0.5)
        task.heartbeat()  # from the handler's thread: blocks until answered, no await
        time.sleep(0.5)
        return {"cancelled": task.cancelled}

    async with worker:
        (described,) = await sfn.finished(await sfn.start(state_machine))
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"cancelled": False}


async def test_an_explicit_heartbeat_after_a_stop_cancels_the_handler_at_once(
    sfn: Sfn, service: LocalService, make_worker: MakeWorker
) -> None:
    arn = await sfn.activity("explicit")
    state_machine = await sfn.machine("explicit", machine(Work=task_state(arn)))
    started, stopped, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    reasons: list[str | None] = []
    worker = make_worker(progress_interval=30)  # no automatic beat comes first

    @worker.activity(arn)
    async def work(task: StepFunctionsTask) -> None:
        started.set()
        await stopped.wait()
        try:
            await task.heartbeat()
        except asyncio.CancelledError as exc:
            assert task.cancel_reason is CancelReason.LEASE_LOST
            reasons.append(str(exc.args[0]))  # the cancellation's message says why
            cancelled.set()
            raise

    async with worker:
        execution = await sfn.start(state_machine)
        await asyncio.wait_for(started.wait(), 10)
        await sfn.stop_execution(executionArn=execution)
        stopped.set()
        await asyncio.wait_for(cancelled.wait(), 5)

    (reason,) = reasons
    assert reason is not None
    assert "TaskTimedOut" in reason
    assert calls(service, "SendTaskSuccess") == calls(service, "SendTaskFailure") == 0


async def test_heartbeat_seconds_for_an_activity_nobody_polls_is_refused(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    from pipeworker import ConfigurationError

    arn = await sfn.activity("polled")
    worker = make_worker(service_settings={"heartbeat_seconds": {"typo": 30}})

    @worker.activity(arn)
    async def polled(task: StepFunctionsTask) -> None: ...

    with pytest.raises(ConfigurationError, match="'typo', which no handler polls"):
        async with worker:
            pass


async def test_both_transports_sign_as_states_where_signatures_are_checked(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeworker import StepFunctions
    from pipeworker.local import LocalConfig

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    config = LocalConfig(poll_hold=0.5, verify_signatures=True, credentials={"AKIDLOCAL": "secret"})
    async with LocalService(config) as service:
        sfn = Sfn(service, aws_access_key_id="AKIDLOCAL", aws_secret_access_key="secret")
        arn = await sfn.activity("signed")
        state_machine = await sfn.machine("signed", machine(Work=task_state(arn)))
        worker = Worker(
            service=StepFunctions(transport=transport),  # type: ignore[arg-type]
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            shutdown_grace=1.0,
        )

        @worker.activity(arn)
        async def signed(task: StepFunctionsTask) -> str:
            return "verified"

        async with worker:
            (described,) = await sfn.finished(await sfn.start(state_machine))
    assert described["output"] == '"verified"'
    assert service.stats()["errors"] == {}


def test_type_is_refused_at_registration_since_step_functions_tasks_have_none() -> None:
    worker = Worker(service=StepFunctions(), region="us-east-1")
    with pytest.raises(ConfigurationError, match="tasks carry no activity type"):

        @worker.activity("arn:aws:states:us-east-1:123456789012:activity:resize", type="Resize")
        async def resize(task: StepFunctionsTask) -> None: ...


async def test_heartbeat_details_are_refused_on_step_functions_not_dropped(
    sfn: Sfn, make_worker: MakeWorker
) -> None:
    # The verb every task shares, called as a handler written for any service would: Step
    # Functions' heartbeat has nowhere to put details, so the handler hears it at once.
    arn = await sfn.activity("detailed")
    state_machine = await sfn.machine("detailed", machine(Work=task_state(arn)))
    worker = make_worker()

    @worker.activity(arn)
    async def detailed(task: BaseTask) -> None:
        await task.heartbeat({"rows": 3})

    async with worker:
        execution = await sfn.start(state_machine)
        (described,) = await sfn.finished(execution)

    assert described["status"] == "FAILED"
    assert described["error"] == "ValidationError"
    assert "carries no details" in described["cause"]
