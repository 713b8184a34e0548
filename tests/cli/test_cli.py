"""The command line, in-process through ``main(argv)``: every option and every exit code."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest

from pipeworker.cli import SETTINGS, main
from pipeworker.testing import serve_in_thread

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def settings_of(out: str) -> dict[str, str]:
    """The ``settings:`` block of ``--check`` output, name -> value (with its source)."""
    block = out.split("settings:\n", 1)[1].splitlines()
    return {
        line.split()[0]: line.split(None, 1)[1].strip() for line in block if line.startswith("  ")
    }


# -- help and --check -----------------------------------------------------------------------------


def test_help_lists_every_option_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for setting in SETTINGS:
        for flag in setting.flags:
            assert flag in out
        assert setting.env in out
    for flag in ("--factory", "--check", "--local", "--pipeline", "--keep-running"):
        assert flag in out
    assert "exit codes" in out


def test_check_prints_activities_groups_and_settings(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app()
    code, out, err = run(capsys, f"{app}:worker", "--check")
    assert code == 0, err
    assert "worker groups: wg-test" in out
    assert "handle" in out
    assert "async" in out
    assert "ShellCommandActivity" in out
    assert "sync (thread)" in out
    assert settings_of(out)["max_concurrency"] == "10"
    assert out.rstrip().endswith("OK: 2 activities on 1 worker group(s)")


def test_every_worker_flag_reaches_the_config(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app()
    code, out, err = run(
        capsys,
        f"{app}:worker",
        "--check",
        "--region=eu-west-1",
        "--endpoint-url=http://127.0.0.1:9",
        "--taskrunner-id=runner-7",
        "--hostname=box.example",
        "--concurrency=3",
        "--progress-interval=5",
        "--heartbeat-interval=60",
        "--shutdown-grace=0",
    )
    assert code == 0, err
    shown = settings_of(out)
    assert shown["region"] == "eu-west-1  (--region)"
    assert shown["endpoint_url"] == "http://127.0.0.1:9  (--endpoint-url)"
    assert shown["taskrunner_id"] == "runner-7  (--taskrunner-id)"
    assert shown["hostname"] == "box.example  (--hostname)"
    assert shown["max_concurrency"] == "3  (--concurrency)"
    assert shown["progress_interval"] == "5s  (--progress-interval)"
    assert shown["heartbeat_interval"] == "60s  (--heartbeat-interval)"
    assert shown["shutdown_grace"] == "0s  (--shutdown-grace)"


def test_java_task_runner_aliases(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app()
    code, out, _ = run(
        capsys,
        f"{app}:worker",
        "--check",
        "--tasks",
        "2",
        "--taskrunnerId",
        "jr-1",
        "--endpoint",
        "http://127.0.0.1:9",
    )
    assert code == 0
    shown = settings_of(out)
    assert shown["max_concurrency"].startswith("2 ")
    assert shown["taskrunner_id"].startswith("jr-1 ")
    assert shown["endpoint_url"].startswith("http://127.0.0.1:9 ")


def test_environment_fills_in_and_flags_win(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = write_app()
    monkeypatch.setenv("PIPEWORKER_CONCURRENCY", "4")
    monkeypatch.setenv("PIPEWORKER_REGION", "ap-south-1")
    monkeypatch.setenv("PIPEWORKER_HOSTNAME", "")  # empty counts as unset
    code, out, _ = run(capsys, f"{app}:worker", "--check", "--concurrency", "6")
    assert code == 0
    shown = settings_of(out)
    assert shown["max_concurrency"] == "6  (--concurrency)"
    assert shown["region"] == "ap-south-1  (PIPEWORKER_REGION)"
    assert "(" not in shown["hostname"]


def test_worker_values_stay_when_nothing_overrides_them(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app(
        """
        from pipeworker import Worker
        worker = Worker(max_concurrency=7, taskrunner_id="mine", region="sa-east-1")
        @worker.activity("wg")
        async def handle(task): ...
        """
    )
    code, out, _ = run(capsys, f"{app}:worker", "--check", "--hostname", "h1")
    assert code == 0
    shown = settings_of(out)
    assert shown["max_concurrency"] == "7"
    assert shown["taskrunner_id"] == "mine"
    assert shown["region"] == "sa-east-1"


def test_factory(capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]) -> None:
    app = write_app(
        """
        from pipeworker import Worker
        def build():
            worker = Worker()
            @worker.activity("built")
            async def handle(task): ...
            return worker
        """
    )
    code, out, _ = run(capsys, f"{app}:build", "--factory", "--check")
    assert code == 0
    assert "worker groups: built" in out


def test_file_path_import_string(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app(name="pkgdir.app_file")
    code, out, _ = run(capsys, f"{app.replace('.', '/')}.py:worker", "--check")
    assert code == 0
    assert "wg-test" in out


def test_log_format_json_and_level(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app(
        APP_WITH_LOGS := """
        import logging
        from pipeworker import Worker
        log = logging.getLogger("myapp")
        log.debug("debug at import", extra={"table": "users"})
        log.info("info at import", extra={"aws_secret_access_key": "hunter2"})
        worker = Worker()
        @worker.activity("wg")
        async def handle(task): ...
        """
    )
    assert APP_WITH_LOGS
    code, _, err = run(capsys, f"{app}:worker", "--check", "--log-format=json", "--log-level=debug")
    assert code == 0
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    debug = next(r for r in records if r["message"] == "debug at import")
    assert debug["level"] == "DEBUG"
    assert debug["logger"] == "myapp"
    assert debug["table"] == "users"
    assert "time" in debug
    info = next(r for r in records if r["message"] == "info at import")
    assert info["aws_secret_access_key"] == "[redacted]"
    assert "hunter2" not in err

    app2 = write_app(APP_WITH_LOGS)
    code, _, err = run(capsys, f"{app2}:worker", "--check", "--log-level", "WARNING")
    assert code == 0
    assert "at import" not in err


def test_log_settings_from_environment(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = write_app(
        """
        import logging
        from pipeworker import Worker
        logging.getLogger("myapp").info("hello", extra={"k": "v"})
        worker = Worker()
        @worker.activity("wg")
        async def handle(task): ...
        """
    )
    monkeypatch.setenv("PIPEWORKER_LOG_FORMAT", "json")
    monkeypatch.setenv("PIPEWORKER_LOG_LEVEL", "info")
    code, _, err = run(capsys, f"{app}:worker", "--check")
    assert code == 0
    assert json.loads(err.splitlines()[0])["k"] == "v"


# -- exit code 2: usage and configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: MODULE:ATTRIBUTE"),
        (["a:b", "--bogus"], "unrecognized arguments: --bogus"),
        (["a:b", "--concurrency", "many"], "--concurrency: 'many' is not a whole number"),
        (["a:b", "--progress-interval", "soon"], "'soon' is not a number of seconds"),
        (["a:b", "--log-format", "xml"], "--log-format: 'xml' is not one of text, json"),
        (["a:b", "--log-level", "loud"], "'loud' is not one of debug"),
        (["a:b", "--local", "--endpoint-url", "http://x"], "cannot be used with --local"),
        (["a:b", "--pipeline", "p.json"], "--pipeline only applies with --local"),
        (["a:b", "--keep-running"], "--keep-running only applies with --local"),
        (["no_colon"], "is not an import string"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("pipeworker: error:") == 1


def test_bad_environment_value_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPEWORKER_SHUTDOWN_GRACE", "later")
    code, _, err = run(capsys, "a:b")
    assert code == 2
    assert "PIPEWORKER_SHUTDOWN_GRACE: 'later' is not a number of seconds" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "0"], "max_concurrency must be at least 1, got 0 (from --concurrency)"),
        (["--shutdown-grace", "-1"], "shutdown_grace must be >= 0 seconds (from --shutdown-grace)"),
        (["--progress-interval", "400"], "lease"),
        (["--hostname", "x" * 2000], "invalid runner identity"),
    ],
)
def test_invalid_values_get_the_workers_own_message(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    argv: list[str],
    message: str,
) -> None:
    app = write_app()
    code, out, err = run(capsys, f"{app}:worker", "--check", *argv)
    assert code == 2
    assert message.split(" (from")[0].split(", got")[0] in err
    if "(from" in message:
        assert message.split(" ")[-1] in err
    assert out == ""


def test_module_not_found(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    write_app()
    code, _, err = run(capsys, "no_such_module_xyz:worker")
    assert code == 2
    assert "could not find module 'no_such_module_xyz'" in err
    assert "Traceback" not in err


def test_package_not_found(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    write_app()
    code, _, err = run(capsys, "nopkg_xyz.app:worker")
    assert code == 2
    assert "could not find module 'nopkg_xyz' (the package of 'nopkg_xyz.app')" in err


def test_import_error_inside_the_app_shows_its_traceback(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app("import requests_that_do_not_exist_xyz\n")
    code, _, err = run(capsys, f"{app}:worker")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert f"{app}.py" in err
    assert "No module named 'requests_that_do_not_exist_xyz'" in err
    assert "the module exists but something it imports is missing" in err
    assert "importlib" not in err


def test_exception_inside_the_app_shows_its_traceback(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app("x = 1\nraise RuntimeError('boom at import')\n")
    code, _, err = run(capsys, f"{app}:worker")
    assert code == 2
    assert "line 2" in err
    assert "RuntimeError: boom at import" in err


def test_missing_attribute_lists_the_workers(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app()
    code, _, err = run(capsys, f"{app}:wrker")
    assert code == 2
    assert f"{app} has no attribute 'wrker'; the Workers it defines: worker" in err


@pytest.mark.parametrize(
    ("attribute", "extra", "message"),
    [
        (
            "handle",
            [],
            "is the function handle(), not a pipeworker.Worker; if it builds one, add --factory",
        ),
        ("NUMBER", [], "is a int (42), not a pipeworker.Worker"),
        ("MyWorker", [], "is the class"),
        ("handle", ["--factory"], "the factory"),
        ("NUMBER", ["--factory"], "which --factory cannot call"),
        ("broken", ["--factory"], "raised ZeroDivisionError"),
    ],
)
def test_not_a_worker_says_what_it_is(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    attribute: str,
    extra: list[str],
    message: str,
) -> None:
    app = write_app(
        """
        from pipeworker import Worker
        NUMBER = 42
        class MyWorker(Worker): ...
        def handle(task=None): return "not a worker"
        def broken(): return 1 / 0
        """
    )
    code, _, err = run(capsys, f"{app}:{attribute}", *extra)
    assert code == 2
    assert message in err


def test_no_activity_registered(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app("from pipeworker import Worker\nworker = Worker()\n")
    code, _, err = run(capsys, f"{app}:worker", "--check")
    assert code == 2
    assert "has no activity registered" in err


def test_no_region_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = write_app(
        "from pipeworker import Worker\nworker = Worker()\n"
        "@worker.activity('wg')\nasync def h(task): ...\n"
    )
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    code, _, err = run(capsys, f"{app}:worker")
    assert code == 2
    assert "region" in err


# -- running against a service: exit codes 0 and 1 ------------------------------------------------


def test_terminate_from_the_service_exits_0(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app()
    with serve_in_thread() as local:
        local.call_soon(lambda: local.service.terminate_runner("runner-t"))
        code, _, err = run(
            capsys,
            f"{app}:worker",
            "--endpoint-url",
            local.endpoint_url,
            "--taskrunner-id",
            "runner-t",
            "--shutdown-grace",
            "1",
        )
    assert code == 0, err
    assert "asked runner runner-t to terminate" in err


def test_failure_while_running_exits_1(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app(
        """
        from pipeworker import Worker
        class Broken(Worker):
            async def on_startup(self):
                raise RuntimeError("database unreachable")
        worker = Broken()
        @worker.activity("wg")
        async def handle(task): ...
        """
    )
    code, _, err = run(capsys, f"{app}:worker", "--endpoint-url", "http://127.0.0.1:9")
    assert code == 1
    assert "the worker failed: RuntimeError: database unreachable" in err


# -- --local ---------------------------------------------------------------------------------------


def test_local_runs_the_apps_demo_pipeline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, out, err = run(capsys, "examples.hello:worker", "--local", "--concurrency", "2")
    assert code == 0, err
    assert "tasks: 0 waiting, 0 running, 4 finished, 0 failed" in out
    assert "pipeline finished" in out
    for name in ("Fetch", "GreetEurope", "GreetAmericas", "Report"):
        assert f"{name} " in out
    assert "Hello, Europe!" in err


FAILING_APP = """
from pipeworker import Worker
worker = Worker()
@worker.activity("wg-local")
async def handle(task):
    if task.field("fail") == "yes":
        raise ValueError("bad input")
"""

FAILING_PIPELINE = {
    "objects": [
        {
            "id": "Default",
            "scheduleType": "ondemand",
            "workerGroup": "wg-local",
            "maximumRetries": "1",
            "retryDelay": "1 Minutes",
        },
        {"id": "A", "type": "ShellCommandActivity", "fail": "yes"},
        {"id": "B", "type": "ShellCommandActivity", "dependsOn": {"ref": "A"}},
    ]
}


def test_local_with_a_failing_activity_exits_1(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str], tmp_path: Path
) -> None:
    app = write_app(FAILING_APP)
    (tmp_path / "p.json").write_text(json.dumps(FAILING_PIPELINE))
    code, out, err = run(capsys, f"{app}:worker", "--local", "--pipeline", "p.json")
    assert code == 1
    assert "bad input" in out
    assert "CASCADE_FAILED" in out
    assert err.count("failed: ValueError: bad input") == 2  # retried once, 1 minute x 0.01
    assert "pipeline failed" in out


def test_local_without_a_definition_exits_2(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str]
) -> None:
    app = write_app(FAILING_APP)
    code, _, err = run(capsys, f"{app}:worker", "--local")
    assert code == 2
    assert "pass --pipeline FILE" in err
    assert "PIPELINE_DEFINITION" in err


def test_local_with_a_bad_definition_exits_2(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str], tmp_path: Path
) -> None:
    app = write_app(FAILING_APP)
    (tmp_path / "bad.json").write_text('{"objects": [{"id": "A", "maximumRetries": 3}]}')
    code, _, err = run(capsys, f"{app}:worker", "--local", "--pipeline", "bad.json")
    assert code == 2
    assert "maximumRetries" in err
    assert '"3"' in err


def test_local_refused_definition_exits_2(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str], tmp_path: Path
) -> None:
    app = write_app(FAILING_APP)
    pipeline = {"objects": [{"id": "A", "type": "ShellCommandActivity", "dependsOn": {"ref": "Z"}}]}
    (tmp_path / "refused.json").write_text(json.dumps(pipeline))
    code, _, err = run(capsys, f"{app}:worker", "--local", "--pipeline", "refused.json")
    assert code == 2
    assert "the definition was refused" in err


class _Watch(StringIO):
    """A stdout that sends this process SIGINT once a line containing *marker* is written."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def write(self, text: str) -> int:
        if self.marker in text:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_local_keep_running_stays_up_until_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    watch = _Watch("aws datapipeline list-pipelines")
    monkeypatch.setattr("sys.stdout", watch)
    code = main(["examples.hello:worker", "--local", "--keep-running"])
    assert code == 0
    text = watch.getvalue()
    assert "pipeline finished" in text
    assert "the local service stays up at http://127.0.0.1:" in text
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in text


def test_local_refuses_activities_no_handler_serves(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str], tmp_path: Path
) -> None:
    app = write_app(FAILING_APP)
    pipeline = {
        "objects": [
            {"id": "Default", "scheduleType": "ondemand", "workerGroup": "wg-local"},
            {"id": "Mine", "type": "ShellCommandActivity"},
            {"id": "Other", "type": "ShellCommandActivity", "workerGroup": "wg-elsewhere"},
        ]
    }
    (tmp_path / "other.json").write_text(json.dumps(pipeline))
    code, _, err = run(capsys, f"{app}:worker", "--local", "--pipeline", "other.json")
    assert code == 2
    assert "would wait forever" in err
    assert "Other (wg-elsewhere)" in err
    assert "Mine" not in err.split("forever")[1]
