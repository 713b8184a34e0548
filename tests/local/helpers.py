"""Helpers shared by the local service's tests: definitions and hand-driven runner steps."""

from __future__ import annotations

from typing import Any

from tests.local.conftest import obj, ref

__all__ = ["chain_definition", "fields_of", "start_pipeline"]


def chain_definition(group: str = "wg-1", **activity_fields: Any) -> list[dict[str, Any]]:
    """Default + three activities: Extract -> Transform -> Load (by dependsOn), one worker group."""
    return [
        obj("Default", scheduleType="ondemand", workerGroup=group, **activity_fields),
        obj("Extract", type="ShellCommandActivity", command="echo extract"),
        obj("Transform", type="ShellCommandActivity", command="echo t", dependsOn=ref("Extract")),
        obj("Load", type="ShellCommandActivity", command="echo load", dependsOn=ref("Transform")),
    ]


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
