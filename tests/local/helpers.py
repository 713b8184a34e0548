"""Definitions for the local service's tests (the generic helpers are in ``tests/helpers.py``)."""

from __future__ import annotations

from typing import Any

from tests.helpers import obj, ref

__all__ = ["chain_definition"]


def chain_definition(group: str = "wg-1", **activity_fields: Any) -> list[dict[str, Any]]:
    """Default + three activities: Extract -> Transform -> Load (by dependsOn), one worker group."""
    return [
        obj("Default", scheduleType="ondemand", workerGroup=group, **activity_fields),
        obj("Extract", type="ShellCommandActivity", command="echo extract"),
        obj("Transform", type="ShellCommandActivity", command="echo t", dependsOn=ref("Extract")),
        obj("Load", type="ShellCommandActivity", command="echo load", dependsOn=ref("Transform")),
    ]
