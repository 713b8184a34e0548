"""Preconditions end to end: the local service hands out ShellCommandPrecondition and Exists
tasks, the runner answers FALSE until they hold, and ``preconditionTimeout`` ends the wait.

Skipped, with the reason, only when the local service does not hand out precondition tasks
(the feature is being added to it separately); the handlers themselves are tested in
``test_handlers.py`` either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeworker.testing import LocalEndpoint
from tests.taskrunner.conftest import Launcher, start_pipeline, wait_done, wait_until, wire
from tests.taskrunner.test_end_to_end import default, read, runner_args


def first_task(local: LocalEndpoint) -> str:
    """The attempt the service hands out first for an activity behind a precondition."""
    client = local.client
    pipeline_id = start_pipeline(
        client,
        [
            wire("Default", scheduleType="ondemand", workerGroup="probe", maximumRetries="0"),
            wire("Check", type="ShellCommandPrecondition", command="true"),
            wire("Act", type="ShellCommandActivity", command="true", precondition={"ref": "Check"}),
        ],
    )
    try:
        task = client.poll_for_task(workerGroup="probe").get("taskObject")
    finally:
        client.delete_pipeline(pipelineId=pipeline_id)
    return str(task["attemptId"]) if task else "nothing"


@pytest.fixture
def preconditions(local: LocalEndpoint) -> LocalEndpoint:
    first = first_task(local)
    if not first.startswith("@Check_"):
        pytest.skip(
            "the local Data Pipeline service on this branch does not hand out precondition "
            f"tasks (ShellCommandPrecondition, Exists): it handed out {first} first"
        )
    return local


def test_preconditions_are_false_then_true_and_time_out(
    preconditions: LocalEndpoint, s3: Any, launcher: Launcher, tmp_path: Path
) -> None:
    local = preconditions
    flag = tmp_path / "ready.flag"
    never_ran = tmp_path / "never-ran"
    ready = start_pipeline(
        local.client,
        [
            default(),
            wire(
                "Ready",
                type="ShellCommandPrecondition",
                command=f"test -f {flag}",
                preconditionTimeout="10 Hours",
            ),
            wire(
                "AfterReady",
                type="ShellCommandActivity",
                command="echo ran",
                precondition={"ref": "Ready"},
            ),
        ],
    )
    late = start_pipeline(
        local.client,
        [
            default(),
            wire("Arrived", type="Exists", preconditionTimeout="10 Hours"),
            wire(
                "Late",
                type="S3DataNode",
                filePath="s3://data-bucket/late/input.txt",
                precondition={"ref": "Arrived"},
            ),
            wire(
                "UseLate",
                type="ShellCommandActivity",
                stage="true",
                input={"ref": "Late"},
                command="cat ${INPUT1_STAGING_DIR}/input.txt",
                stdout="s3://data-bucket/late/seen.txt",
            ),
        ],
    )
    never = start_pipeline(
        local.client,
        [
            default(),
            # Scaled by the local service's time_scale (0.001): gives up within a second.
            wire(
                "Never",
                type="ShellCommandPrecondition",
                command="false",
                preconditionTimeout="5 Minutes",
            ),
            wire(
                "AfterNever",
                type="ShellCommandActivity",
                command=f"touch {never_ran}",
                precondition={"ref": "Never"},
            ),
        ],
    )
    runner = launcher.start(*runner_args(local))
    # Both wait: the runner answered FALSE for each at least once.
    wait_until(lambda: runner.text().count("precondition not met") >= 2, what="FALSE answers")
    flag.touch()
    s3.put_object(Bucket="data-bucket", Key="late/input.txt", Body=b"arrived\n")
    assert wait_done(local.client, ready, ["AfterReady"], runner)["AfterReady"] == "FINISHED"
    assert wait_done(local.client, late, ["UseLate"], runner)["UseLate"] == "FINISHED"
    assert read(s3, "data-bucket", "late/seen.txt") == b"arrived\n"
    # preconditionTimeout: the activity behind a precondition that never holds never runs.
    assert wait_done(local.client, never, ["AfterNever"], runner)["AfterNever"] != "FINISHED"
    assert not never_ran.exists()
    runner.terminate()
