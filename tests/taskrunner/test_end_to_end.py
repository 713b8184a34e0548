"""The runner end to end: the real command line as a child process, the local Data Pipeline
service, and moto's S3."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pipeworker.testing import LocalEndpoint
from tests.taskrunner.conftest import (
    Launcher,
    described,
    start_pipeline,
    statuses,
    wait_done,
    wait_until,
    wire,
)

GROUP = "wg-taskrunner"


def default(**fields: Any) -> dict[str, Any]:
    """The ``Default`` object: on demand, this worker group, no retries, logs to S3."""
    base = {
        "scheduleType": "ondemand",
        "workerGroup": GROUP,
        "maximumRetries": "0",
        "pipelineLogUri": "s3://logs-bucket/pipelines",
    }
    return wire("Default", **{**base, **fields})


def runner_args(local: LocalEndpoint, *extra: str) -> list[str]:
    return [
        f"--workerGroup={GROUP}",
        "--endpoint",
        local.endpoint_url,
        "--region",
        "us-east-1",
        "--progress-interval",
        "0.3",
        "--shutdown-grace",
        "2",
        *extra,
    ]


def read(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def attempt_of(local: LocalEndpoint, pipeline_id: str, component: str) -> dict[str, Any]:
    for fields in described(local.client, pipeline_id, "ATTEMPT"):
        if fields["@componentParent"] == component:
            return fields
    raise AssertionError(f"no attempt of {component}")


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie waiting for a parent that exited does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_staged_pipeline_reads_s3_input_and_writes_s3_output(
    local: LocalEndpoint, s3: Any, launcher: Launcher
) -> None:
    s3.put_object(Bucket="data-bucket", Key="in/a.txt", Body=b"hello\n")
    s3.put_object(Bucket="data-bucket", Key="in/sub/b.txt", Body=b"world\n")
    s3.put_object(Bucket="data-bucket", Key="lookup/suffix.txt", Body=b"!\n")
    # Both forms a script uses: ${INPUT1_STAGING_DIR} substituted, $OUTPUT1_STAGING_DIR from env.
    command = (
        'cat ${INPUT1_STAGING_DIR}/a.txt "$INPUT1_STAGING_DIR/sub/b.txt" '
        "${INPUT2_STAGING_DIR}/suffix.txt | tr a-z A-Z > $OUTPUT1_STAGING_DIR/result.txt && "
        "wc -l < ${OUTPUT1_STAGING_DIR}/result.txt > $OUTPUT2_STAGING_DIR/count.txt && "
        "echo transformed"
    )
    pipeline_id = start_pipeline(
        local.client,
        [
            default(),
            wire("In", type="S3DataNode", directoryPath="s3://data-bucket/in"),
            wire("Lookup", type="S3DataNode", filePath="s3://data-bucket/lookup/suffix.txt"),
            wire("Out", type="S3DataNode", directoryPath="s3://data-bucket/out"),
            wire("Count", type="S3DataNode", filePath="s3://data-bucket/stats/lines.txt"),
            wire(
                "Transform",
                type="ShellCommandActivity",
                stage="true",
                input=[{"ref": "In"}, {"ref": "Lookup"}],
                output=[{"ref": "Out"}, {"ref": "Count"}],
                command=command,
            ),
        ],
    )
    runner = launcher.start(*runner_args(local))
    assert wait_done(local.client, pipeline_id, ["Transform"], runner)["Transform"] == "FINISHED"

    assert read(s3, "data-bucket", "out/result.txt") == b"HELLO\nWORLD\n!\n"
    assert read(s3, "data-bucket", "stats/lines.txt").strip() == b"3"
    # The attempt's logs, in the documented pipelineLogUri layout.
    attempt = attempt_of(local, pipeline_id, "Transform")
    prefix = f"pipelines/{pipeline_id}/Transform/{attempt['@instanceParent']}/{attempt['@id']}/"
    assert keys(s3, "logs-bucket", prefix) == [
        prefix + "Activity.log",
        prefix + "stderr",
        prefix + "stdout",
    ]
    assert read(s3, "logs-bucket", prefix + "stdout") == b"transformed\n"
    activity_log = read(s3, "logs-bucket", prefix + "Activity.log").decode()
    assert "staged 2 file(s)" in activity_log
    assert "uploaded 1 file(s)" in activity_log
    assert runner.terminate() == 0
    # A successful attempt leaves no working directory behind.
    assert list((runner.output / "tasks").iterdir()) == []


def test_script_uri_runs_with_its_arguments_in_order(
    local: LocalEndpoint, s3: Any, launcher: Launcher, tmp_path: Path
) -> None:
    # No "#!": run by /bin/sh, as the Java runner does with a plain shell script.
    s3.put_object(Bucket="data-bucket", Key="scripts/greet.sh", Body=b'echo "$2, $1 ($#)"\n')
    s3.put_object(
        Bucket="data-bucket",
        Key="scripts/py.sh",
        Body=b"#!/usr/bin/env python3\nimport sys\nprint('python', sys.argv[1:])\n",
    )
    local_stdout = tmp_path / "logs" / "greet.out"
    pipeline_id = start_pipeline(
        local.client,
        [
            default(),
            wire(
                "Greet",
                type="ShellCommandActivity",
                scriptUri="s3://data-bucket/scripts/greet.sh",
                scriptArgument=["world", "hello"],
                stdout=str(local_stdout),
            ),
            wire(
                "Python",
                type="ShellCommandActivity",
                scriptUri="s3://data-bucket/scripts/py.sh",
                scriptArgument=["a b", "c"],
                stdout="s3://data-bucket/py.out",
            ),
        ],
    )
    runner = launcher.start(*runner_args(local))
    done = wait_done(local.client, pipeline_id, ["Greet", "Python"], runner)
    assert done == {"Greet": "FINISHED", "Python": "FINISHED"}, runner.text()
    assert local_stdout.read_text() == "hello, world (2)\n"
    assert read(s3, "data-bucket", "py.out") == b"python ['a b', 'c']\n"
    runner.terminate()


def test_stdout_and_stderr_go_to_s3(local: LocalEndpoint, s3: Any, launcher: Launcher) -> None:
    pipeline_id = start_pipeline(
        local.client,
        [
            default(),
            wire(
                "Talk",
                type="ShellCommandActivity",
                command="echo to-out; echo to-err >&2; echo more-out",
                stdout="s3://data-bucket/talk/stdout.txt",
                stderr="s3://data-bucket/talk/stderr.txt",
            ),
        ],
    )
    runner = launcher.start(*runner_args(local))
    assert wait_done(local.client, pipeline_id, ["Talk"], runner) == {"Talk": "FINISHED"}
    assert read(s3, "data-bucket", "talk/stdout.txt") == b"to-out\nmore-out\n"
    assert read(s3, "data-bucket", "talk/stderr.txt") == b"to-err\n"
    runner.terminate()


def test_non_zero_exit_is_failed_with_its_exit_code(
    local: LocalEndpoint, s3: Any, launcher: Launcher
) -> None:
    pipeline_id = start_pipeline(
        local.client,
        [
            default(),
            wire(
                "Broken",
                type="ShellCommandActivity",
                command="echo 'cannot find input' >&2; exit 3",
                stderr="s3://data-bucket/broken.err",
            ),
        ],
    )
    runner = launcher.start(*runner_args(local))
    assert wait_done(local.client, pipeline_id, ["Broken"], runner) == {"Broken": "FAILED"}
    attempt = attempt_of(local, pipeline_id, "Broken")
    assert attempt["errorId"] == "ExitCode3"
    assert "exited with code 3" in attempt["errorMessage"]
    assert "cannot find input" in attempt["errorMessage"]
    # The output is delivered even when the command fails, and the working directory kept.
    assert read(s3, "data-bucket", "broken.err") == b"cannot find input\n"
    assert len(list((runner.output / "tasks").iterdir())) == 1
    runner.terminate()


def test_log_uri_gets_the_runner_log_on_exit(
    local: LocalEndpoint, s3: Any, launcher: Launcher
) -> None:
    pipeline_id = start_pipeline(
        local.client, [default(), wire("Hello", type="ShellCommandActivity", command="true")]
    )
    runner = launcher.start(
        *runner_args(local), "--logUri=s3://logs-bucket/runners", "--taskrunnerId=runner-7"
    )
    assert wait_done(local.client, pipeline_id, ["Hello"], runner) == {"Hello": "FINISHED"}
    assert keys(s3, "logs-bucket", "runners/") == []  # hourly: nothing yet
    assert runner.terminate() == 0
    shipped = keys(s3, "logs-bucket", "runners/")
    assert len(shipped) == 1
    assert shipped[0].startswith("runners/runner-7/taskrunner.")
    assert shipped[0].endswith(".log.gz")
    text = gzip.decompress(read(s3, "logs-bucket", shipped[0])).decode()
    assert attempt_of(local, pipeline_id, "Hello")["@id"] in text
    assert "FINISHED" in text


def test_a_failed_log_upload_never_fails_the_task_and_is_retried(
    local: LocalEndpoint, s3: Any, launcher: Launcher
) -> None:
    pipeline_id = start_pipeline(
        local.client,
        [
            default(pipelineLogUri="s3://late-bucket/dp"),
            wire("Hello", type="ShellCommandActivity", command="echo hi"),
        ],
    )
    runner = launcher.start(
        *runner_args(local),
        "--log-upload-interval",
        "0.3",
        "--logUri=s3://late-bucket/runner",
        "--taskrunnerId=late-runner",
    )
    assert wait_done(local.client, pipeline_id, ["Hello"], runner) == {"Hello": "FINISHED"}
    wait_until(lambda: "retried on the next upload cycle" in runner.text(), what="the warning")
    wait_until(lambda: "runner log upload failed" in runner.text(), what="the runner log's")
    s3.create_bucket(Bucket="late-bucket")
    wait_until(
        lambda: any(key.endswith("/stdout") for key in keys(s3, "late-bucket", "dp/")),
        what="the attempt's logs",
    )
    wait_until(lambda: keys(s3, "late-bucket", "runner/late-runner/"), what="the runner's log")
    assert runner.terminate() == 0


@pytest.mark.parametrize("how", ["cancel", "lease-lost", "sigterm"])
def test_a_long_command_is_killed_with_its_whole_process_group(
    local: LocalEndpoint, s3: Any, launcher: Launcher, tmp_path: Path, how: str
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    # A background child that would outlive its shell if only the shell were signalled.
    command = f"sleep 300 & echo $! > {pids}/child; echo $$ > {pids}/shell; wait"
    pipeline_id = start_pipeline(
        local.client,
        [default(), wire("Long", type="ShellCommandActivity", command=command)],
    )
    runner = launcher.start(*runner_args(local, "--shutdown-grace", "1", "--kill-grace", "1"))
    wait_until(lambda: (pids / "shell").exists() and (pids / "shell").read_text(), what="start")
    child, shell = (int((pids / name).read_text()) for name in ("child", "shell"))
    assert alive(child)
    assert alive(shell)
    instance = described(local.client, pipeline_id, "INSTANCE")[0]["@id"]
    if how == "cancel":
        local.client.set_status(pipelineId=pipeline_id, objectIds=[instance], status="TRY_CANCEL")
        wait_until(lambda: not alive(child) and not alive(shell), what="the command to die")
        assert statuses(local.client, pipeline_id) == {"Long": "CANCELED"}
        assert runner.process.poll() is None  # the runner itself carries on
        assert runner.terminate() == 0
    elif how == "lease-lost":
        local.client.delete_pipeline(pipelineId=pipeline_id)  # progress: PipelineDeleted
        wait_until(lambda: not alive(child) and not alive(shell), what="the command to die")
        assert "lease lost" in runner.text()
        assert runner.terminate() == 0
    else:
        assert runner.terminate(within=15) == 0
        assert not alive(child)
        assert not alive(shell)
        attempt = attempt_of(local, pipeline_id, "Long")
        assert attempt["errorId"] == "RunnerShutdown"


def test_local_runs_a_definition_file_for_real(s3: Any, launcher: Launcher, tmp_path: Path) -> None:
    definition = tmp_path / "definition.json"
    definition.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "Default",
                        "name": "Default",
                        "scheduleType": "ondemand",
                        "workerGroup": "laptop",
                        "maximumRetries": "0",
                        "pipelineLogUri": "s3://logs-bucket/local",
                    },
                    {"id": "In", "type": "S3DataNode", "filePath": "s3://data-bucket/l/in.txt"},
                    {"id": "Out", "type": "S3DataNode", "directoryPath": "s3://data-bucket/l/out"},
                    {
                        "id": "Shout",
                        "name": "Shout",
                        "type": "ShellCommandActivity",
                        "stage": "true",
                        "input": {"ref": "In"},
                        "output": {"ref": "Out"},
                        "command": "tr a-z A-Z < $INPUT1_STAGING_DIR/in.txt > "
                        "$OUTPUT1_STAGING_DIR/out.txt",
                    },
                    {
                        "id": "Then",
                        "name": "Then",
                        "type": "ShellCommandActivity",
                        "dependsOn": {"ref": "Shout"},
                        "command": "echo done",
                    },
                ]
            }
        )
    )
    s3.put_object(Bucket="data-bucket", Key="l/in.txt", Body=b"quiet\n")
    # No --workerGroup: the definition's worker groups are served.
    code, output = launcher.run("--local", "--pipeline", str(definition))
    assert code == 0, output
    assert "pipeline finished" in output
    assert read(s3, "data-bucket", "l/out/out.txt") == b"QUIET\n"
    assert keys(s3, "logs-bucket", "local/")

    definition.write_text(definition.read_text().replace("echo done", "exit 4"))
    code, output = launcher.run("--local", "--pipeline", str(definition))
    assert code == 1
    assert "ExitCode4" in output
