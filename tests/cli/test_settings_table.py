"""The settings table: each setting declared once, and everything else generated from it.

The rows are :class:`~pipeworker._config.WorkerConfig`'s fields (and the command line's own
rows). These tests show that a row added to a table becomes a flag, a variable and a ``--check``
line with no other edit; that the listings the type checker needs (``WorkerSettings``) and the
README cannot drift from the table; the precedence (flags > environment > the Worker's values);
and that a bad value from each source is refused naming that source.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import pipeworker
from pipeworker import ConfigurationError, Worker
from pipeworker._config import WORKER_SETTINGS, WorkerConfig, WorkerSettings, make_config
from pipeworker._pacing import RateLimitSetting
from pipeworker._setting import Setting, build, check_whole, parse_whole, setting, table
from pipeworker._settings import (
    CLI_SETTINGS,
    SETTINGS,
    SettingsParser,
    UsageError,
    add_setting_arguments,
    apply_settings,
    check_rows,
    resolve_settings,
)
from pipeworker.cli import main, parse_options
from pipeworker.services.base import Service

REPO = Path(__file__).resolve().parents[2]
NAMES = [row.name for row in WORKER_SETTINGS]


# -- one table: the listings beside it are pinned to it ----------------------------------------


def test_every_config_field_is_a_row_and_every_row_a_field() -> None:
    assert [field.name for field in dataclasses.fields(WorkerConfig)] == NAMES
    assert NAMES[0] == "service"  # the later checks read its lease and identity rules
    assert len(set(NAMES + [row.name for row in CLI_SETTINGS])) == len(NAMES) + len(CLI_SETTINGS)


def test_worker_keywords_are_the_table_with_the_types_its_checks_accept() -> None:
    # WorkerSettings is the one other listing of names (mypy needs a TypedDict for **settings):
    # the same names, and for each the type its row's check accepts.
    namespace = {"RateLimitSetting": RateLimitSetting, "Service": Service}
    keywords = typing.get_type_hints(WorkerSettings, localns=namespace)
    assert list(keywords) == NAMES[1:]  # service: an explicit keyword of Worker
    for row in WORKER_SETTINGS[1:]:
        assert row.check is not None
        accepted = typing.get_type_hints(row.check, localns=namespace)["value"]
        assert keywords[row.name] == accepted, row.name
    parameters = inspect.signature(Worker.__init__).parameters
    assert list(parameters) == ["self", "service", "observer", "settings"]
    assert parameters["settings"].kind is inspect.Parameter.VAR_KEYWORD


def test_help_worker_explains_every_setting_from_the_table() -> None:
    doc = " ".join((Worker.__doc__ or "").split())
    assert "{settings}" not in doc
    for row in WORKER_SETTINGS[1:]:
        assert f"{row.name}: {' '.join(row.help.split())}; default " in doc, row.name
        for flag in row.flags:
            assert f"``{flag}``" in doc
        if row.env:
            assert row.env in doc


def test_help_lists_every_flag_with_its_help_default_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for row in SETTINGS:
        assert f"{row.help} (" in out, row.name
        assert f"default: {row.describe_default()}) [{row.env}]" in out, row.name


def test_the_readme_names_every_keyword_flag_and_variable() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for row in WORKER_SETTINGS:
        assert f"{row.name}=" in readme, f"README's Worker(...) signature lacks {row.name}"
    for row in SETTINGS:
        for flag in row.flags:
            assert f"`{flag}`" in readme, flag
        assert f"`{row.env}`" in readme, row.env


# -- a new row: a keyword, a flag, a variable and a --check line, with no other edit -------------


@dataclasses.dataclass(frozen=True, slots=True)
class _WithPollBatch(WorkerConfig):
    poll_batch: int = setting(
        check_whole,
        default=3,
        help="tasks asked for in one poll",
        flags=("--poll-batch", "--pollBatch"),
        parse=parse_whole,
        metavar="N",
    )


ROWS = table(_WithPollBatch)


@dataclasses.dataclass
class _Given:
    settings: dict[str, Any]
    sources: dict[str, str]


def _parse(argv: list[str], environ: dict[str, str]) -> _Given:
    parser = SettingsParser(prog="test")
    add_setting_arguments(parser, ROWS)
    return _Given(*resolve_settings(parser.parse_args(argv), environ, ROWS))


def test_a_new_row_is_a_flag_a_variable_and_a_check_line() -> None:
    row = ROWS[-1]
    assert (row.name, row.env) == ("poll_batch", "PIPEWORKER_POLL_BATCH")
    parser = SettingsParser(prog="test")
    add_setting_arguments(parser, ROWS)
    usage = " ".join(parser.format_help().split())
    assert "--poll-batch N, --pollBatch N tasks asked for in one poll" in usage
    assert "(Worker default: 3) [PIPEWORKER_POLL_BATCH]" in usage

    assert build(_WithPollBatch, ROWS, {}).poll_batch == 3
    given = _parse(["--pollBatch", "5"], {"PIPEWORKER_POLL_BATCH": "7"})
    assert (given.settings, given.sources) == ({"poll_batch": 5}, {"poll_batch": "--pollBatch"})
    from_env = _parse([], {"PIPEWORKER_POLL_BATCH": "7"})
    config = build(_WithPollBatch, ROWS, from_env.settings)
    assert config.poll_batch == 7
    assert ("poll_batch", "7", "PIPEWORKER_POLL_BATCH") in check_rows(config, from_env, ROWS)

    with pytest.raises(ConfigurationError, match="poll_batch must be at least 1, got 0"):
        build(_WithPollBatch, ROWS, {"poll_batch": 0})
    with pytest.raises(UsageError, match="PIPEWORKER_POLL_BATCH: 'many' is not a whole number"):
        _parse([], {"PIPEWORKER_POLL_BATCH": "many"})


def test_check_shows_every_setting_with_its_source() -> None:
    worker = Worker(region="us-east-1", loop_stall_threshold=None)
    options = parse_options(["app:w", "--log-format", "json"], {"PIPEWORKER_HTTP_PORT": "9100"})
    apply_settings(worker, options)
    shown = {name: (value, source) for name, value, source in check_rows(worker.config, options)}
    assert list(shown) == NAMES[1:] + [row.name for row in CLI_SETTINGS]
    assert shown["http_port"] == ("9100", "PIPEWORKER_HTTP_PORT")
    assert shown["log_format"] == ("json", "--log-format")
    assert shown["region"] == ("us-east-1", None)
    assert shown["loop_stall_threshold"] == ("(off)", None)
    assert shown["ready_max_call_age"] == ("300s", None)
    assert shown["transport"] == ("lean", None)  # the service's own
    assert shown["log_level"] == ("info", None)


# -- precedence: flags > environment > the Worker's values ---------------------------------------


@pytest.mark.parametrize("command", ["pipeworker", "pipeworker-taskrunner"])
def test_a_flag_wins_over_its_variable_which_wins_over_the_worker(command: str) -> None:
    from pipeworker.taskrunner._options import parse_options as runner_options

    worker = Worker(max_concurrency=7, region="sa-east-1", hostname="mine", shutdown_grace=9)
    environ = {
        "PIPEWORKER_CONCURRENCY": "5",
        "PIPEWORKER_REGION": "eu-west-1",
        "PIPEWORKER_SHUTDOWN_GRACE": "",  # empty counts as unset
    }
    argv = ["--concurrency", "3"]
    options: Any = (
        parse_options(["app:w", *argv], environ)
        if command == "pipeworker"
        else runner_options(["--workerGroup", "wg", "--output", "/tmp", *argv], environ)
    )
    apply_settings(worker, options)
    config = worker.config
    assert config.max_concurrency == 3  # the flag over its variable and the Worker's 7
    assert config.region == "eu-west-1"  # the variable over the Worker's
    assert (config.hostname, config.shutdown_grace) == ("mine", 9.0)  # the Worker's own stay
    assert dict(options.sources) == {
        "max_concurrency": "--concurrency",
        "region": "PIPEWORKER_REGION",
    }


# -- a bad value names where it came from ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--concurrency", "x"], {}, "--concurrency: 'x' is not a whole number"),
        (["--tasks", "x"], {}, "--tasks: 'x' is not a whole number"),  # the flag typed
        ([], {"PIPEWORKER_CONCURRENCY": "x"}, "PIPEWORKER_CONCURRENCY: 'x' is not a whole number"),
        (["--http-port", "70000"], {}, "--http-port: 70000 is not a port number (0-65535)"),
        ([], {"PIPEWORKER_RATE_LIMITS": "fast"}, "PIPEWORKER_RATE_LIMITS: 'fast' is not one of"),
    ],
)
def test_a_value_of_the_wrong_kind_names_its_flag_or_variable(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError) as info:
        parse_options(["app:w", *argv], environ)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["--concurrency", "0"],
            {},
            "max_concurrency must be at least 1, got 0 (from --concurrency)",
        ),
        (
            [],
            {"PIPEWORKER_CONCURRENCY": "0"},
            "max_concurrency must be at least 1, got 0 (from PIPEWORKER_CONCURRENCY)",
        ),
        (
            [],
            {"PIPEWORKER_PROGRESS_INTERVAL": "0.01"},
            "progress_interval must be at least 0.05 seconds, got 0.01",
        ),
        (["--endpoint", "ftp://x"], {}, "is not an http:// or https:// URL"),
        (["--taskrunnerId", "a" * 2000], {}, "(from --taskrunnerId)"),
    ],
)
def test_a_value_the_check_refuses_names_its_flag_or_variable(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    worker = Worker()
    with pytest.raises(ConfigurationError) as info:
        apply_settings(worker, parse_options(["app:w", *argv], environ))
    assert message in str(info.value)
    source = argv[0] if argv else next(iter(environ))
    assert str(info.value).endswith(f"(from {source})")


def test_a_value_the_check_refuses_from_the_code_names_the_keyword() -> None:
    with pytest.raises(ConfigurationError, match=r"^max_concurrency must be at least 1, got 0$"):
        Worker(max_concurrency=0)
    with pytest.raises(ConfigurationError, match="http_port must be a port number"):
        Worker(http_port=70000)
    with pytest.raises(ConfigurationError, match="loop_stall_threshold must be > 0 seconds"):
        Worker(loop_stall_threshold=timedelta(0))


def test_the_command_line_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    write_app: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = write_app()
    monkeypatch.setenv("PIPEWORKER_HEARTBEAT_INTERVAL", "0")
    assert main([f"{app}:worker", "--check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "heartbeat_interval must be > 0 seconds" in err
    assert err.rstrip().endswith("(from PIPEWORKER_HEARTBEAT_INTERVAL)")
    assert "Traceback" not in err


def test_a_misspelled_keyword_is_refused_with_the_setting_it_resembles() -> None:
    with pytest.raises(TypeError, match="'max_concurency'; did you mean 'max_concurrency'"):
        Worker(max_concurency=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"'colour'$"):
        make_config(colour="blue")  # type: ignore[call-arg]


def test_rows_are_complete() -> None:
    for row in (*WORKER_SETTINGS, *CLI_SETTINGS):
        assert isinstance(row, Setting)
        assert row.help
        assert not row.help.endswith(".")
        assert bool(row.flags) == bool(row.env)
        if row.flags:
            assert row.env == "PIPEWORKER_" + row.flags[0][2:].replace("-", "_").upper()


# -- the type checker: Worker(...)'s keywords are typed for users ---------------------------------


@pytest.mark.slow
def test_mypy_refuses_a_misspelled_or_mistyped_keyword(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from datetime import timedelta\n"
        "from pipeworker import Worker\n"
        "Worker(max_concurency=3)\n"
        "Worker(max_concurrency='3')\n"
        "Worker(max_concurrency=3, progress_interval=timedelta(seconds=5), rate_limits='off')\n"
        "Worker(region=None, http_port=None, loop_stall_threshold=None)\n",
        encoding="utf-8",
    )
    # This checkout's pipeworker, not whatever the environment has installed.
    monkeypatch.setenv("MYPYPATH", str(Path(pipeworker.__file__).parents[1]))
    out, err, _ = api.run(["--strict", "--no-incremental", "--cache-dir", os.devnull, str(snippet)])
    errors = {
        int(match[1]): match[2] for match in re.finditer(r"snippet\.py:(\d+): error: (.*)", out)
    }
    assert set(errors) == {3, 4}, out + err
    assert 'Unexpected keyword argument "max_concurency"' in errors[3]
    assert 'did you mean "max_concurrency"' in errors[3]
    assert 'Argument "max_concurrency" to "Worker" has incompatible type "str"' in errors[4]
