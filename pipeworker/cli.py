"""``python -m pipeworker MODULE:ATTRIBUTE``: argument parsing, logging setup and exit codes.

Nothing heavy is imported at module level (no aiobotocore, no aiohttp, not even the Worker) so
``--help`` answers at once; the app, and with it the rest of pipeworker, is imported only once the
arguments are known to be good.

Settings come from, in order of precedence: the command line, ``PIPEWORKER_*`` environment
variables, then the values the app's ``Worker(...)`` was built with (the table and the rules are
in ``pipeworker._settings``).

Exit codes: 0 the worker stopped normally (a signal, or the service's ``terminate``), 1 it failed
while running (or, with ``--local``, a pipeline object failed), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pipeworker import __version__
from pipeworker._settings import (
    SETTINGS,
    ParsedSettings,
    Setting,
    SettingsParser,
    UsageError,
    add_setting_arguments,
    apply_settings,
    check_rows,
    resolve_settings,
)

if TYPE_CHECKING:
    from pipeworker._importer import LoadedApp
    from pipeworker.worker import Worker

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "SETTINGS",
    "Setting",
    "UsageError",
    "apply_settings",
    "main",
]

ParsedT = TypeVar("ParsedT")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_EPILOG = """\
environment:
  Every setting above can also come from PIPEWORKER_<NAME> (PIPEWORKER_REGION,
  PIPEWORKER_CONCURRENCY, PIPEWORKER_LOG_FORMAT, ...); a flag wins over its variable,
  and both win over the values the app's Worker(...) was built with.

exit codes:
  0  the worker stopped normally (SIGTERM/SIGINT, or the service asked it to terminate);
     with --local, every pipeline object finished
  1  the worker failed while running; with --local, a pipeline object failed;
     with --check --http-port, the worker is unhealthy or did not answer
  2  a usage or configuration error (found before any task was polled)

examples:
  python -m pipeworker examples.hello:worker --local
  python -m pipeworker myapp.tasks:worker --region eu-west-1 --concurrency 4
  python -m pipeworker myapp/tasks.py:build_worker --factory --check
  python -m pipeworker myapp.tasks:worker --check --http-port 9100   # liveness probe
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every default is None so environment variables can fill the gaps."""
    parser = SettingsParser(
        prog="python -m pipeworker",
        description="Run a pipeworker Worker: poll AWS Data Pipeline for tasks and run them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"pipeworker {__version__}")
    parser.add_argument(
        "app",
        metavar="MODULE:ATTRIBUTE",
        help="the Worker to run: 'package.module:worker' or 'path/to/file.py:worker'",
    )
    parser.add_argument(
        "--factory",
        action="store_true",
        help="ATTRIBUTE is a function that takes no arguments and returns the Worker",
    )
    add_setting_arguments(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="load the app, validate settings and registrations, print the activities "
        "and worker groups, and exit without polling; with --http-port, probe a running "
        "worker's /healthz instead and exit 0 if it is healthy, 1 if not",
    )
    local = parser.add_argument_group("local run (no AWS account needed)")
    local.add_argument(
        "--local",
        action="store_true",
        help="start the built-in local Data Pipeline service in this process, activate a "
        "pipeline on it, run the worker against it and exit when the pipeline is done",
    )
    local.add_argument(
        "--pipeline",
        metavar="FILE",
        help="the pipeline definition for --local, in the JSON format of 'aws datapipeline "
        "put-pipeline-definition' (default: the app module's PIPELINE_DEFINITION)",
    )
    local.add_argument(
        "--keep-running",
        action="store_true",
        help="with --local: stay up after the pipeline is done, for boto3 or the AWS CLI",
    )
    local.add_argument(
        "--parameter-values",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="with --local: parameter values, as 'aws datapipeline put-pipeline-definition "
        "--parameter-values myS3LogsPath=s3://bucket/logs' takes them (repeatable)",
    )
    local.add_argument(
        "--parameter-values-uri",
        metavar="FILE",
        help='with --local: a JSON file {"values": {"myParam": "value"}} of parameter values',
    )
    local.add_argument(
        "--parameter-objects",
        metavar="FILE",
        help='with --local: a JSON file {"parameters": [...]} replacing the definition\'s own',
    )
    return parser


@dataclass(frozen=True)
class Options(ParsedSettings):
    """The parsed command line, settings resolved from flags and the environment.

    Attributes:
        app: the import string.
        factory: whether the attribute is a factory.
        settings: the settings that were given, by name; absent means "not given".
        sources: where each given setting came from (``--concurrency``, ``PIPEWORKER_REGION``).
        check: ``--check``.
        local: ``--local``.
        pipeline: ``--pipeline``.
        keep_running: ``--keep-running``.
        parameter_values: ``--parameter-values`` (``KEY=VALUE`` each).
        parameter_values_uri: ``--parameter-values-uri``.
        parameter_objects: ``--parameter-objects``.
    """

    app: str
    factory: bool
    settings: Mapping[str, Any]
    sources: Mapping[str, str]
    check: bool
    local: bool
    pipeline: str | None
    keep_running: bool
    parameter_values: tuple[str, ...] = ()
    parameter_values_uri: str | None = None
    parameter_objects: str | None = None


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> Options:
    """Parse *argv* and fill unset settings from *environ*.

    Raises:
        UsageError: a bad option, or a value that is not of the setting's kind.
    """
    namespace = build_parser().parse_args(argv)
    settings, sources = resolve_settings(namespace, environ)
    check_local_options(
        namespace,
        sources,
        "--pipeline",
        "--keep-running",
        "--parameter-values",
        "--parameter-values-uri",
        "--parameter-objects",
    )
    return Options(
        app=namespace.app,
        factory=namespace.factory,
        settings=settings,
        sources=sources,
        check=namespace.check,
        local=namespace.local,
        pipeline=namespace.pipeline,
        keep_running=namespace.keep_running,
        parameter_values=tuple(namespace.parameter_values),
        parameter_values_uri=namespace.parameter_values_uri,
        parameter_objects=namespace.parameter_objects,
    )


def check_local_options(
    namespace: argparse.Namespace, sources: Mapping[str, str], *local_only: str
) -> None:
    """``--local`` runs its own endpoint, and the *local_only* flags need it (both CLIs).

    Raises:
        UsageError: an endpoint with ``--local``, or a local-only flag without it.
    """
    if namespace.local and "endpoint_url" in sources:
        raise UsageError(
            f"{sources['endpoint_url']} cannot be used with --local, which runs its own endpoint"
        )
    for flag in local_only:
        if getattr(namespace, flag.lstrip("-").replace("-", "_")) and not namespace.local:
            raise UsageError(f"{flag} only applies with --local")


def load_worker(options: Options) -> tuple[Worker, LoadedApp]:
    """Import the app, call the factory if asked, and check that the result is a Worker.

    Raises:
        AppLoadError: the app could not be imported, or is not a Worker (the message says what
            it is instead).
    """
    from pipeworker._importer import AppLoadError, describe, import_from_string, user_traceback
    from pipeworker.exceptions import ConfigurationError
    from pipeworker.worker import Worker

    loaded = import_from_string(options.app)
    obj = loaded.obj
    if options.factory:
        if not callable(obj):
            raise AppLoadError(f"{options.app} is {describe(obj)}, which --factory cannot call")
        try:
            obj = obj()
        except ConfigurationError:
            raise
        except Exception as exc:
            raise AppLoadError(
                f"the factory {options.app} raised {type(exc).__name__}: {exc}",
                details=user_traceback(exc),
            ) from exc
        if not isinstance(obj, Worker):
            raise AppLoadError(
                f"the factory {options.app} returned {describe(obj)}, not a pipeworker.Worker"
            )
    elif not isinstance(obj, Worker):
        hint = (
            "; if it builds one, add --factory"
            if callable(obj) and not isinstance(obj, type)
            else ""
        )
        if isinstance(obj, type) and issubclass(obj, Worker):
            hint = "; point at an instance of it, or at a function returning one with --factory"
        raise AppLoadError(f"{options.app} is {describe(obj)}, not a pipeworker.Worker{hint}")
    loaded.obj = obj
    return obj, loaded


def _print_check(worker: Worker, loaded: LoadedApp, options: Options) -> None:
    config = worker.config
    activities = sorted(
        worker.activities.values(), key=lambda activity: (activity.queue, activity.type or "")
    )
    queue_name = config.service.queue_name
    groups = sorted({activity.queue for activity in activities})
    where = getattr(loaded.module, "__file__", None) or loaded.module.__name__
    print(f"app: {options.app} ({where})")
    print(f"service: {config.service.name}")
    print(f"{queue_name}s: {', '.join(groups)}")
    rows = [(queue_name, "type", "handler", "kind")] + [
        (a.queue, a.type or "(any)", a.name, "async" if a.is_async else "sync (thread)")
        for a in activities
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print("activities:")
    for row in rows:
        print(
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print("settings:")
    shown = check_rows(config, options)
    width = max(len(name) for name, _, _ in shown)
    for name, value, source in shown:
        origin = f"  ({source})" if source else ""
        print(f"  {name.ljust(width)}  {value}{origin}")
    plural = "y" if len(activities) == 1 else "ies"
    print(f"OK: {len(activities)} activit{plural} on {len(groups)} {queue_name}(s)")


def _fail(message: str, details: str | None = None, prog: str = "pipeworker") -> None:
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    sys.stderr.write(f"{prog}: error: {message}\n")


def parse_command_line(
    parse: Callable[[list[str], Mapping[str, str]], ParsedT],
    build_parser: Callable[[], argparse.ArgumentParser],
    argv: Sequence[str] | None,
    prog: str,
) -> ParsedT | int:
    """``parse(arguments, environment)``, or the exit code when there is nothing to run: 2 after
    printing the usage and the error for a :class:`UsageError`, 0 after ``--help``.

    Args:
        parse: the command line's own parser of arguments and environment.
        build_parser: its argparse parser, for the usage line.
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.
        prog: the program's name, for the error line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return parse(args, os.environ)
    except UsageError as exc:
        build_parser().print_usage(sys.stderr)
        _fail(str(exc), prog=prog)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 stopped, 1 failed, 2 usage error).

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.
    """
    options = parse_command_line(parse_options, build_parser, argv, "pipeworker")
    if isinstance(options, int):
        return options
    if options.check and "http_port" in options.settings:
        # A probe: the running worker answers; the app is not loaded, no AWS client is made.
        return _probe(options)

    from pipeworker import _logging

    _logging.configure(options.log_level, options.log_format)

    from pipeworker._importer import AppLoadError
    from pipeworker.exceptions import ConfigurationError

    try:
        worker, loaded = load_worker(options)
        apply_settings(worker, options)
        if not worker.activities:
            raise ConfigurationError(
                f"{options.app} has no activity registered: decorate a handler with "
                "@worker.activity('my-worker-group') before running it"
            )
    except AppLoadError as exc:
        _fail(str(exc), exc.details)
        return EXIT_USAGE
    except ConfigurationError as exc:
        _fail(str(exc))
        return EXIT_USAGE

    if options.check:
        _print_check(worker, loaded, options)
        return EXIT_OK
    if options.local:
        from pipeworker._localrun import LocalRunError, run_local

        try:
            return run_local(
                worker,
                loaded.module,
                pipeline=options.pipeline,
                keep_running=options.keep_running,
                region=options.settings.get("region"),
                parameter_values=options.parameter_values,
                parameter_values_uri=options.parameter_values_uri,
                parameter_objects=options.parameter_objects,
            )
        except (ConfigurationError, LocalRunError) as exc:
            _fail(str(exc))
            return EXIT_USAGE
    return run_worker(worker)


def _probe(options: Options) -> int:
    import urllib.error
    import urllib.request

    host = str(options.settings.get("http_host", "127.0.0.1"))
    port = int(options.settings["http_port"])
    if port == 0:
        _fail(f"{options.sources['http_port']}: --check needs the running worker's port, not 0")
        return EXIT_USAGE
    if host in ("0.0.0.0", "::", ""):  # bound to every address: ask over loopback
        host = "127.0.0.1" if host != "::" else "::1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            print(response.read().decode(errors="replace").strip())
            return EXIT_OK if response.status == 200 else EXIT_FAILURE
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace").strip())
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(f"no answer from {url}: {reason}")
        return EXIT_FAILURE


def run_worker(worker: Worker) -> int:
    """``worker.run()`` as a command: the exit code for how it ended (0, 1, 2)."""
    import logging

    from pipeworker.exceptions import ConfigurationError

    log = logging.getLogger("pipeworker.cli")
    try:
        worker.run()
    except ConfigurationError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        log.critical("the worker failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return EXIT_FAILURE
    if worker.left_behind:
        return exit_leaving_behind(worker)
    return EXIT_OK


# Set when the worker left handlers running: the process must end even if their threads
# (or threads they started) would keep the interpreter alive.
_hard_exit = False


def exit_leaving_behind(worker: Worker) -> int:
    """After ``worker.run()`` left handlers running: say so, and have :func:`run_main` end the
    process for certain (exit 1), so that a task handed back cannot run twice."""
    import logging

    global _hard_exit
    _hard_exit = True
    logging.getLogger("pipeworker.cli").error(
        "exiting with handlers still running (%s): their tasks were handed back, and the "
        "process ends so that they cannot run twice",
        "; ".join(worker.left_behind),
    )
    return EXIT_FAILURE


def run_main(entry: Callable[[], int] | None = None) -> NoReturn:
    """A console script's body: *entry* (:func:`main` by default), then exit with its code."""
    code = (entry or main)()
    if _hard_exit:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
