"""The examples in ``examples/taskrunner``: their command lines parse, and the staged
definition runs with ``--local`` against moto's S3."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from pipeworker.taskrunner._options import parse_options
from tests.taskrunner.conftest import Launcher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "taskrunner"


def _exec_start() -> list[str]:
    unit = (EXAMPLES / "pipeworker-taskrunner.service").read_text()
    logical = unit.replace("\\\n", " ")
    line = next(line for line in logical.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_systemd_unit_runs_the_console_script_with_java_flags(tmp_path: Path) -> None:
    argv = _exec_start()
    assert argv[0].endswith("/pipeworker-taskrunner")
    creds = tmp_path / "credentials.json"
    creds.write_text((EXAMPLES / "credentials.json").read_text())
    args = [arg.replace("/etc/taskrunner/credentials.json", str(creds)) for arg in argv[1:]]
    args = [arg.replace("/var/lib/taskrunner/output", str(tmp_path / "out")) for arg in args]
    options = parse_options(args, {})
    assert options.worker_groups == ("wg-12345",)
    assert options.credentials == (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    assert str(options.log_uri) == "s3://mybucket/taskrunner-logs"
    assert options.settings["http_port"] == 9100


def test_the_kubernetes_manifest_probes_the_runners_health_endpoints() -> None:
    manifest = yaml.safe_load((EXAMPLES / "kubernetes.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    options = parse_options(container["args"], {})
    port = options.settings["http_port"]
    assert options.settings["http_host"] == "0.0.0.0"
    named = {item["name"]: item["containerPort"] for item in container["ports"]}
    assert named[container["livenessProbe"]["httpGet"]["port"]] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    grace = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > options.settings["shutdown_grace"]


def test_the_staged_example_runs_locally(s3: Any, launcher: Launcher) -> None:
    for bucket in ("my-data", "my-logs"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="my-data", Key="raw/a.csv", Body=b"A,B\n")
    s3.put_object(Bucket="my-data", Key="raw/b.csv", Body=b"C,D\n")
    definition = json.loads((EXAMPLES / "staged.json").read_text())
    assert definition["objects"][0]["workerGroup"] == "laptop"
    code, output = launcher.run("--local", "--pipeline", str(EXAMPLES / "staged.json"))
    assert code == 0, output
    assert s3.get_object(Bucket="my-data", Key="clean/a.csv")["Body"].read() == b"a,b\n"
    assert s3.get_object(Bucket="my-data", Key="clean/b.csv")["Body"].read() == b"c,d\n"
