"""``python -m pipeworker app:worker --local --pipeline FILE`` runs published samples.

With parameter values given as their READMEs give them to the AWS CLI, and ``runsOn`` activities
served by handlers registered for the resource's id. Each run is a real subprocess, as a user
starts it. The public samples are read where the conformance suite reads them (skipped when
absent); a definition of the same shape written here runs always.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conformance.harness import definitions_dir

REPO = Path(__file__).resolve().parents[2]

APP = """
from pipeworker import Task, Worker

worker = Worker(region="us-east-1")

def _serve(resource):
    @worker.activity(resource)
    async def handle(task: Task) -> None:
        command = task.field("command") or task.field("step") or ""
        component = getattr(task.field("@componentParent"), "id", "?")
        print(f"ran {component} on {resource}: {command!s:.40}", flush=True)

for resource in ("EC2Resource_HelloWorld", "EC2ResourceObj", "EmrCluster_HadoopTerasort",
                 "Box"):
    _serve(resource)
"""

# The shape of the helloworld sample, written here: a runsOn activity, a required parameter, a
# cron schedule that runs once, a user-defined "myComment" field.
HELLO = {
    "objects": [
        {
            "id": "Default",
            "myComment": "defaults for every object",
            "scheduleType": "cron",
            "schedule": {"ref": "Once"},
            "pipelineLogUri": "#{myS3LogsPath}/hello",
        },
        {
            "id": "Once",
            "type": "Schedule",
            "period": "1 Day",
            "occurrences": "1",
            "startAt": "FIRST_ACTIVATION_DATE_TIME",
        },
        {"id": "Box", "type": "Ec2Resource", "terminateAfter": "1 Hour"},
        {
            "id": "Hello",
            "type": "ShellCommandActivity",
            "runsOn": {"ref": "Box"},
            "command": "echo #{myGreeting}",
        },
    ],
    "parameters": [
        {"id": "myS3LogsPath", "type": "AWS::S3::ObjectKey"},
        {"id": "myGreeting", "type": "String", "default": "hello"},
    ],
}


def _run(tmp_path: Path, pipeline: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "samples_app.py").write_text(textwrap.dedent(APP))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    command = [sys.executable, "-m", "pipeworker", "samples_app:worker", "--local"]
    return subprocess.run(
        [*command, "--pipeline", str(pipeline), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_runs_on_sample_with_parameter_values_runs(tmp_path: Path) -> None:
    pipeline = tmp_path / "hello.json"
    pipeline.write_text(json.dumps(HELLO))
    result = _run(tmp_path, pipeline, "--parameter-values", "myS3LogsPath=s3://bucket/logs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker groups to poll:" in result.stdout
    assert "/Box: Hello (runsOn Box)" in result.stdout
    assert "pipeline finished" in result.stdout
    assert "ran Hello on Box: echo hello" in result.stdout


def test_without_the_required_value_it_says_which(tmp_path: Path) -> None:
    pipeline = tmp_path / "hello.json"
    pipeline.write_text(json.dumps(HELLO))
    result = _run(tmp_path, pipeline)
    assert result.returncode == 2
    assert "'myS3LogsPath', which has no value" in result.stderr
    assert "Traceback" not in result.stderr


def test_parameter_files_as_the_cli_takes_them(tmp_path: Path) -> None:
    pipeline = tmp_path / "hello.json"
    pipeline.write_text(json.dumps(HELLO))
    (tmp_path / "values.json").write_text(json.dumps({"values": {"myS3LogsPath": "s3://b/l"}}))
    objects = {"parameters": [*HELLO["parameters"][:1], {"id": "myGreeting", "default": "hey"}]}
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    result = _run(
        tmp_path,
        pipeline,
        "--parameter-values-uri",
        "file://values.json",
        "--parameter-objects",
        "objects.json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran Hello on Box: echo hey" in result.stdout


def _public(name: str) -> Path:
    folder = definitions_dir()
    if folder is None or not (folder / name).is_file():
        pytest.skip("public definitions not present (see tests/conformance/SOURCES.json)")
    return folder / name


def test_the_published_helloworld_runs(tmp_path: Path) -> None:
    # samples/helloworld/README.md: --parameter-values myS3LogsPath="s3://<your s3 logging path>"
    pipeline = _public("samples--helloworld--helloworld.json")
    result = _run(tmp_path, pipeline, "--parameter-values", "myS3LogsPath=s3://dpl-samples/logs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran ShellCommandActivity_HelloWorld on EC2Resource_HelloWorld" in result.stdout
    assert "pipeline finished" in result.stdout


def test_the_published_efs_backup_runs(tmp_path: Path) -> None:
    # samples/EFSBackup/README.md lists the parameters; the values are of the kinds it describes.
    pipeline = _public("samples--EFSBackup--1-Node-EFSBackupPipeline.json")
    values = [
        "myInterval=daily",
        "myRetainedBackups=7",
        "myEfsID=backup-fs-12345678",
        "myEfsSource=10.0.1.32:/",
        "myEfsBackup=10.0.1.75:/",
    ]
    result = _run(tmp_path, pipeline, "--parameter-values", *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran ShellCommandActivityObj on EC2ResourceObj" in result.stdout
    assert "pipeline finished" in result.stdout


def test_the_published_emr_terasort_runs(tmp_path: Path) -> None:
    # samples/HadoopTerasort/README.md: --parameter-values myS3Path="s3://<your s3 logging path>"
    pipeline = _public("samples--HadoopTerasort--TeraSortHadoopBenchmark.json")
    result = _run(tmp_path, pipeline, "--parameter-values", "myS3Path=s3://terasort/logs")
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.startswith("ran ")]
    assert [line.split()[1] for line in ran] == [
        "TeraGen_1GB",
        "TeraSort",
        "TeraValidate",
        "ProcessJHIST",
    ]
    assert "pipeline finished" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parameter-values", "myS3LogsPath"], "write each as KEY=VALUE"),
        (
            ["--parameter-values", "a=b", "--parameter-values-uri", "v.json"],
            "not both",
        ),
        (["--parameter-values-uri", "missing.json"], "missing.json: cannot read the file"),
        (["--parameter-objects", "hello.json"], 'without "parameters"'),
    ],
)
def test_bad_parameter_options_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeworker.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "samples_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "hello.json").write_text(json.dumps({"objects": HELLO["objects"]}))
    code = main(["samples_app:worker", "--local", "--pipeline", "hello.json", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err


def test_parameter_options_need_local(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeworker.cli import main

    assert main(["samples_app:worker", "--parameter-values", "a=b"]) == 2
    assert "--parameter-values only applies with --local" in capsys.readouterr().err
