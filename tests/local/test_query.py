"""QueryObjects (spheres, selectors, pages) and DescribeObjects."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import fields_of, obj, start_pipeline
from tests.local.helpers import chain_definition


def selector(field: str, kind: str, *values: str) -> dict[str, Any]:
    return {"fieldName": field, "operator": {"type": kind, "values": list(values)}}


async def query(dp: Any, pipeline_id: str, sphere: str, *selectors: Any, **more: Any) -> Any:
    return await dp.query_objects(
        pipelineId=pipeline_id, sphere=sphere, query={"selectors": list(selectors)}, **more
    )


async def test_spheres_and_selectors(dp: Any) -> None:
    pipeline_id = (await dp.create_pipeline(name="p", uniqueId="u"))["pipelineId"]
    await dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=chain_definition())
    await dp.activate_pipeline(pipelineId=pipeline_id, startTimestamp="2026-11-22T10:00:00Z")
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    components = await query(dp, pipeline_id, "COMPONENT")
    assert components["ids"] == ["Default", "Extract", "Transform", "Load"]
    typed = await query(
        dp, pipeline_id, "COMPONENT", selector("type", "EQ", "ShellCommandActivity")
    )
    assert typed["ids"] == ["Extract", "Transform", "Load"]
    by_name = await query(dp, pipeline_id, "COMPONENT", selector("name", "EQ", "Load"))
    assert by_name["ids"] == ["Load"]
    running = await query(dp, pipeline_id, "INSTANCE", selector("@status", "EQ", "RUNNING"))
    assert running["ids"] == ["@Extract_2026-11-22T10:00:00"]
    waiting = await query(
        dp, pipeline_id, "INSTANCE", selector("@status", "EQ", "WAITING_ON_DEPENDENCIES")
    )
    assert len(waiting["ids"]) == 2
    attempts = await query(dp, pipeline_id, "ATTEMPT")
    assert attempts["ids"] == [task["attemptId"]]
    by_ref = await query(
        dp, pipeline_id, "ATTEMPT", selector("@instanceParent", "REF_EQ", running["ids"][0])
    )
    assert by_ref["ids"] == [task["attemptId"]]
    start = "@scheduledStartTime"
    assert (
        len(
            (
                await query(
                    dp, pipeline_id, "INSTANCE", selector(start, "GE", "2026-11-22T10:00:00")
                )
            )["ids"]
        )
        == 3
    )
    assert (await query(dp, pipeline_id, "INSTANCE", selector(start, "LE", "2026-11-22T09:59:59")))[
        "ids"
    ] == []
    between = selector(start, "BETWEEN", "2026-11-22T09:00:00", "2026-11-22T11:00:00")
    assert len((await query(dp, pipeline_id, "INSTANCE", between))["ids"]) == 3
    both = await query(
        dp,
        pipeline_id,
        "INSTANCE",
        selector(start, "GE", "2026-11-22T10:00:00"),
        selector("@status", "EQ", "RUNNING"),
    )
    assert len(both["ids"]) == 1


async def test_limit_and_marker_page_through_results(dp: Any) -> None:
    objects = [obj("Default", scheduleType="ondemand", workerGroup="g")] + [
        obj(f"A{index:02}", type="ShellCommandActivity") for index in range(7)
    ]
    pipeline_id = await start_pipeline(dp, objects)
    seen: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = await dp.query_objects(
            pipelineId=pipeline_id, sphere="INSTANCE", limit=3, marker=marker
        )
        seen.extend(page["ids"])
        pages += 1
        if not page["hasMoreResults"]:
            break
        marker = page["marker"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7


async def test_bad_queries_are_invalid_requests(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    for bad in (
        {"query": {"selectors": [selector("@status", "BETWEEN", "only-one")]}},
        {"marker": "not-a-number"},
    ):
        with pytest.raises(ClientError) as caught:
            await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE", **bad)
        assert caught.value.response["Error"]["Code"] == "InvalidRequestException"


async def test_describe_objects_components_and_evaluation(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    component = (await dp.describe_objects(pipelineId=pipeline_id, objectIds=["Extract"]))[
        "pipelineObjects"
    ][0]
    assert fields_of(component) == {"type": "ShellCommandActivity", "command": "echo extract"}
    with pytest.raises(ClientError) as caught:
        await dp.describe_objects(pipelineId=pipeline_id, objectIds=["Nope"])
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
