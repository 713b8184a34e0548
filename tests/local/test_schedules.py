"""Schedules fire (issue 14, item 10): cron and time-series runs, backfill, end, occurrences.

The service runs durations x0.001 (``FAST``), so a 15-minute period comes every 0.9 s and an hour
every 3.6 s; instances carry the schedule's own (unscaled) times, as on AWS.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeworker.local import LocalService
from tests.helpers import eventually, fields_of, obj, ref, start_pipeline

FMT = "%Y-%m-%dT%H:%M:%S"


def _definition(schedule_type: str, **schedule: str) -> list[dict[str, Any]]:
    return [
        obj("Default", scheduleType=schedule_type, workerGroup="wg", schedule=ref("Every")),
        obj("Every", type="Schedule", **schedule),
        obj("Work", type="ShellCommandActivity", command="run #{@scheduledStartTime}"),
    ]


async def _runs(dp: Any, pipeline_id: str) -> list[dict[str, Any]]:
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    if not ids:
        return []
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    runs = [fields_of(o) for o in described["pipelineObjects"]]
    return sorted(runs, key=lambda fields: fields["@scheduledStartTime"])


async def _state(dp: Any, pipeline_id: str) -> str:
    described = await dp.describe_pipelines(pipelineIds=[pipeline_id])
    fields = fields_of(described["pipelineDescriptionList"][0])
    return str(fields["@pipelineState"])


async def _finish_one(dp: Any) -> str:
    task = (await dp.poll_for_task(workerGroup="wg", hostname="h"))["taskObject"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    attempt = fields_of(task["objects"][task["attemptId"]])
    instance = fields_of(task["objects"][attempt["@instanceParent"]["ref"]])
    return str(instance["command"])


def _hour_ago(hours: float) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(hours=hours)


async def test_cron_runs_every_period_for_its_occurrences(dp: Any) -> None:
    definition = _definition(
        "cron", period="15 minutes", startAt="FIRST_ACTIVATION_DATE_TIME", occurrences="3"
    )
    pipeline_id = await start_pipeline(dp, definition)
    first = await _runs(dp, pipeline_id)
    assert len(first) == 1, "a cron run starts at the beginning of its period: at activation"
    assert await _finish_one(dp) == f"run {first[0]['@scheduledStartTime']}"
    assert await _state(dp, pipeline_id) == "SCHEDULED", "more runs are to come"

    async def runs_made(count: int) -> bool:
        return len(await _runs(dp, pipeline_id)) >= count

    for count in (2, 3):
        await eventually(lambda count=count: runs_made(count), within=10)  # 0.9 s apart
        await _finish_one(dp)
    runs = await _runs(dp, pipeline_id)
    starts = [datetime.strptime(r["@scheduledStartTime"], FMT) for r in runs]
    assert [b - a for a, b in itertools.pairwise(starts)] == [timedelta(minutes=15)] * 2
    assert runs[0]["@scheduledEndTime"] == runs[1]["@scheduledStartTime"]
    assert await _state(dp, pipeline_id) == "FINISHED", "occurrences reached, last run over"


async def test_a_period_takes_its_scaled_time(dp: Any) -> None:
    # 1 hour at x0.001 is 3.6 s: right after the first run, the second is not there yet.
    definition = _definition("cron", period="1 hour", startAt="FIRST_ACTIVATION_DATE_TIME")
    pipeline_id = await start_pipeline(dp, definition)
    await _finish_one(dp)
    assert len(await _runs(dp, pipeline_id)) == 1
    assert await _state(dp, pipeline_id) == "SCHEDULED"


async def test_timeseries_backfills_past_periods(dp: Any) -> None:
    start = _hour_ago(3.5)
    definition = _definition("timeseries", period="1 hour", startDateTime=start.strftime(FMT))
    pipeline_id = await start_pipeline(dp, definition)
    runs = await _runs(dp, pipeline_id)
    # A time-series run starts at the end of its period: 3 periods have ended.
    assert [r["@scheduledStartTime"] for r in runs] == [
        (start + timedelta(hours=h)).strftime(FMT) for h in range(3)
    ]
    commands = {await _finish_one(dp) for _ in range(3)}
    assert commands == {f"run {r['@scheduledStartTime']}" for r in runs}
    assert await _state(dp, pipeline_id) == "SCHEDULED", "no end: the schedule goes on"


async def test_end_date_time_ends_the_schedule(dp: Any) -> None:
    start = _hour_ago(2)
    definition = _definition(
        "cron",
        period="1 hour",
        startDateTime=start.strftime(FMT),
        endDateTime=(start + timedelta(minutes=90)).strftime(FMT),
    )
    pipeline_id = await start_pipeline(dp, definition)
    assert len(await _runs(dp, pipeline_id)) == 2
    await _finish_one(dp)
    assert await _state(dp, pipeline_id) == "SCHEDULED"
    await _finish_one(dp)
    assert await _state(dp, pipeline_id) == "FINISHED"


async def test_backfill_limit_keeps_the_latest_runs(make_service: Any, make_client: Any) -> None:
    service: LocalService = await make_service(backfill_limit=1)
    dp = await make_client(service)
    start = _hour_ago(48)
    definition = _definition("cron", period="1 day", startDateTime=start.strftime(FMT))
    pipeline_id = await start_pipeline(dp, definition)
    runs = await _runs(dp, pipeline_id)
    assert [r["@scheduledStartTime"] for r in runs] == [(start + timedelta(days=2)).strftime(FMT)]


async def test_deactivation_stops_the_clock_and_activation_resumes(dp: Any) -> None:
    definition = _definition("cron", period="15 minutes", startAt="FIRST_ACTIVATION_DATE_TIME")
    pipeline_id = await start_pipeline(dp, definition)
    await _finish_one(dp)
    await dp.deactivate_pipeline(pipelineId=pipeline_id)
    assert await _state(dp, pipeline_id) == "INACTIVE"
    await dp.activate_pipeline(pipelineId=pipeline_id)
    assert await _state(dp, pipeline_id) == "SCHEDULED"

    async def second_run() -> bool:
        return len(await _runs(dp, pipeline_id)) >= 2

    await eventually(second_run, within=10)
