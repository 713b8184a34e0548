"""The command line: every Java Task Runner flag works end to end, and bad input is exit 2."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from pipeworker.local import LocalConfig
from pipeworker.taskrunner import main
from pipeworker.taskrunner._options import build_parser, export_environment, parse_options
from pipeworker.testing import serve_in_thread
from tests.taskrunner.conftest import Launcher, runner_env, start_pipeline, wait_done, wire
from tests.taskrunner.test_end_to_end import GROUP, default, keys


@pytest.mark.parametrize("credentials", ["--config", "--accessId"])
def test_a_java_runner_start_up_line_works_with_only_its_first_words_changed(
    s3: Any,
    launcher: Launcher,
    tmp_path: Path,
    proxy: tuple[int, list[tuple[str, str | None]]],
    credentials: str,
) -> None:
    port, seen = proxy
    # The service checks signatures: only the keys given on the command line are accepted,
    # not the ones in the environment.
    config = LocalConfig(
        poll_hold=0.5,
        time_scale=0.001,
        verify_signatures=True,
        credentials={"AKIDFROMFLAGS": "secret-from-flags"},
    )
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"access-id": "AKIDFROMFLAGS", "private-key": "secret-from-flags"}))
    given = (
        [f"--config={creds}"]
        if credentials == "--config"
        else ["--accessId", "AKIDFROMFLAGS", "--secretKey=secret-from-flags"]
    )
    with serve_in_thread(config) as local:
        client = boto3.client(
            "datapipeline",
            endpoint_url=local.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="AKIDFROMFLAGS",
            aws_secret_access_key="secret-from-flags",
        )
        pipeline_id = start_pipeline(
            client, [default(), wire("Hello", type="ShellCommandActivity", command="echo hi")]
        )
        # As in the Developer Guide: java -jar TaskRunner-1.0.jar --config ... --workerGroup=...
        runner = launcher.start(
            *given,
            f"--workerGroup={GROUP}",
            "--taskrunnerId=java-flags-runner",
            f"--endpoint={local.endpoint_url}",
            "--region=us-east-1",
            "--logUri=s3://logs-bucket/java",
            f"--output={tmp_path / 'java-output'}",
            "--tasks=3",
            "--proxyHost=127.0.0.1",
            f"--proxyPort={port}",
            "--proxyUsername=proxy-user",
            "--proxyPassword=p@ss:word",
            env=runner_env(
                launcher.moto_url, AWS_ACCESS_KEY_ID="AKIDWRONG", AWS_SECRET_ACCESS_KEY="wrong"
            ),
        )
        assert wait_done(client, pipeline_id, ["Hello"], runner) == {"Hello": "FINISHED"}
        assert runner.terminate() == 0
        client.close()
    text = runner.text()
    assert "up to 3 tasks at once" in text
    assert "p@ss" not in text  # the proxy password is never logged
    assert (tmp_path / "java-output" / "taskrunner.log").exists()
    assert keys(s3, "logs-bucket", "java/java-flags-runner/")
    hosts = {host for host, _ in seen}
    assert urlsplit(local.endpoint_url).netloc in hosts  # Data Pipeline through the proxy
    assert urlsplit(launcher.moto_url).netloc in hosts  # and S3
    expected = "Basic " + base64.b64encode(b"proxy-user:p@ss:word").decode()
    assert {auth for _, auth in seen} == {expected}


# -- usage errors: exit 2 with a message, never a traceback --------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workergroup=wg"], "unrecognized arguments: --workergroup=wg"),
        (["--tasks", "2"], "--workerGroup is required"),
        (["--workerGroup", "wg", "--tasks", "x"], "--tasks: 'x' is not a whole number"),
        (["--workerGroup", "wg", "--tasks", "0"], "max_concurrency"),
        (["--workerGroup", "wg", "--proxyPort", "8080"], "--proxyPort needs --proxyHost"),
        (["--workerGroup", "wg", "--proxyHost", "proxy"], "--proxyHost needs --proxyPort"),
        (
            ["--workerGroup", "wg", "--proxyHost", "proxy", "--proxyPort", "99999"],
            "--proxyPort: '99999' is not a port number",
        ),
        (
            ["--workerGroup", "wg", "--proxyHost=p", "--proxyPort=1", "--proxyUsername=u"],
            "--proxyUsername and --proxyPassword go together",
        ),
        (["--workerGroup", "wg", "--proxyDomain", "CORP"], "--proxyDomain is an NTLM proxy"),
        (["--workerGroup", "wg", "--proxyWorkstation", "PC1"], "no NTLM support"),
        (["--workerGroup", "wg", "--config", "/nonexistent/creds.json"], "--config: cannot read"),
        (["--workerGroup", "wg", "--accessId", "AKID"], "--accessId and --secretKey go together"),
        (["--workerGroup", "wg", "--logUri", "https://bucket/logs"], "--logUri: 'https://"),
        (["--workerGroup", "wg", "--http-port", "70000"], "--http-port: 70000 is not a port"),
        (["--workerGroup", "wg", "--shutdown-grace", "soon"], "--shutdown-grace: 'soon'"),
        (["--workerGroup", "wg", "--log-upload-interval", "0"], "--log-upload-interval"),
        (["--workerGroup", "x" * 1025], "invalid worker group"),
        (["--workerGroup", "wg", "--pipeline", "def.json"], "--pipeline only applies with --local"),
        (["--local"], "--local needs --pipeline"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "pipeworker-taskrunner: error:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["access-id"]', "must hold a JSON object"),
        ('{"access-id": "AKID"}', 'has no "private-key" string'),
    ],
)
def test_a_bad_config_file_exits_2(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text(content)
    assert main(["--workerGroup", "wg", "--config", str(creds)]) == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_config_file_exits_2_as_a_real_process(
    launcher: Launcher, tmp_path: Path
) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text('{"access-id": "a", "private-key": "b"}')
    creds.chmod(0)
    if _can_read(creds):  # root reads anything: a directory is unreadable as a file to all
        creds = tmp_path / "a-directory.json"
        creds.mkdir()
    code, output = launcher.run("--workerGroup=wg", f"--config={creds}")
    assert code == 2
    assert "--config: cannot read" in output
    assert "Traceback" not in output


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True


def test_access_id_wins_over_the_config_file(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.json"
    creds.write_text('{"access-id": "FROMFILE", "private-key": "file-secret"}')
    options = parse_options(
        ["--workerGroup=wg", f"--config={creds}", "--accessId=FROMFLAG", "--secretKey=flag"], {}
    )
    assert options.credentials == ("FROMFLAG", "flag")
    assert "flag" not in repr(options)  # credentials stay out of reprs
    env: dict[str, str] = {"AWS_SESSION_TOKEN": "belongs-to-other-keys"}
    export_environment(options, env)
    assert env == {"AWS_ACCESS_KEY_ID": "FROMFLAG", "AWS_SECRET_ACCESS_KEY": "flag"}


def test_java_defaults(tmp_path: Path) -> None:
    options = parse_options(["--workerGroup=wg"], {})
    assert options.settings == {}  # --tasks unset: the runner uses the Java default of 2
    assert options.output == Path("output").absolute()
    assert options.log_interval == 3600.0


def test_the_readme_table_lists_every_java_flag_and_each_is_known() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Replacing the Java Task Runner", 1)[1].split("\n## ", 1)[0]
    java_column = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `--")]
    flags = {flag for cell in java_column for flag in re.findall(r"--[A-Za-z]+", cell)}
    assert flags == JAVA_FLAGS
    known = {option for action in build_parser()._actions for option in action.option_strings}
    assert flags <= known


JAVA_FLAGS = {
    "--help",
    "--workerGroup",
    "--taskrunnerId",
    "--config",
    "--accessId",
    "--secretKey",
    "--endpoint",
    "--region",
    "--logUri",
    "--output",
    "--tasks",
    "--proxyHost",
    "--proxyPort",
    "--proxyUsername",
    "--proxyPassword",
    "--proxyDomain",
    "--proxyWorkstation",
}
"""The Developer Guide's Task Runner configuration options."""


def test_the_proxy_variables_are_honoured_without_flags(
    local: Any, s3: Any, launcher: Launcher, proxy: tuple[int, list[tuple[str, str | None]]]
) -> None:
    port, seen = proxy
    pipeline_id = start_pipeline(
        local.client, [default(), wire("Hello", type="ShellCommandActivity", command="true")]
    )
    # The endpoints here are http://, so HTTP_PROXY is the variable that applies; HTTPS_PROXY
    # takes the same path for AWS's https:// endpoints.
    env = runner_env(launcher.moto_url, HTTP_PROXY=f"http://127.0.0.1:{port}")
    runner = launcher.start(
        f"--workerGroup={GROUP}", f"--endpoint={local.endpoint_url}", "--region=us-east-1", env=env
    )
    assert wait_done(local.client, pipeline_id, ["Hello"], runner) == {"Hello": "FINISHED"}
    assert runner.terminate() == 0
    hosts = {host for host, _ in seen}
    assert urlsplit(local.endpoint_url).netloc in hosts
    assert urlsplit(launcher.moto_url).netloc in hosts


def test_an_output_directory_that_cannot_hold_the_log_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    (output / "taskrunner.log").mkdir(parents=True)  # unwritable as a file, even for root
    assert main(["--workerGroup=wg", f"--output={output}"]) == 2
    assert "--output: cannot write the log" in capsys.readouterr().err


def test_help_lists_every_java_flag_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for flag in JAVA_FLAGS:
        assert re.search(rf"{flag}\b(?!-)", shown), flag
