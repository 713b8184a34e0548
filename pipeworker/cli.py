"""``python -m pipeworker MODULE:ATTRIBUTE``: argument parsing, logging setup and exit codes.

Nothing heavy is imported at module level (no aiobotocore, no aiohttp, not even the Worker) so
``--help`` answers at once; the app, and with it the rest of pipeworker, is imported only once the
arguments are known to be good.

Settings come from, in order of precedence: the command line, ``PIPEWORKER_*`` environment
variables, then the values the app's ``Worker(...)`` was built with.

Exit codes: 0 the worker stopped normally (a signal, or the service's ``terminate``), 1 it failed
while running (or, with ``--local``, a pipeline object failed), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeworker._importer import LoadedApp
    from pipeworker.worker import Worker

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "SETTINGS", "Setting", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

ENV_PREFIX = "PIPEWORKER_"


class UsageError(Exception):
    """A bad option, environment variable or app: exit 2 with this message."""


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port number (0-65535)")
    return port


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.lower()

    return convert


def _rate_limits(text: str) -> str | None:
    mode = _choice("auto", "service", "off")(text)
    return None if mode == "off" else mode


@dataclass(frozen=True)
class Setting:
    """One setting that can come from a flag or an environment variable.

    Attributes:
        dest: the attribute on the parsed options.
        flags: the option strings, the preferred one first (aliases follow the Java Task Runner).
        convert: turns text into the value; raises ValueError with a message.
        metavar: the placeholder in ``--help``.
        help: the help text.
        worker_param: the ``Worker(...)`` argument it overrides, or None for a CLI-only setting.
    """

    dest: str
    flags: tuple[str, ...]
    convert: Callable[[str], Any]
    metavar: str
    help: str
    worker_param: str | None = None

    @property
    def env(self) -> str:
        """The environment variable for this setting, ``PIPEWORKER_<DEST>``."""
        return ENV_PREFIX + self.dest.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "region",
        ("--region",),
        str,
        "REGION",
        "AWS region (default: the usual AWS settings, AWS_DEFAULT_REGION or ~/.aws/config)",
        "region",
    ),
    Setting(
        "endpoint_url",
        ("--endpoint-url", "--endpoint"),
        str,
        "URL",
        "send requests to this endpoint instead of AWS's",
        "endpoint_url",
    ),
    Setting(
        "taskrunner_id",
        ("--taskrunner-id", "--taskrunnerId"),
        str,
        "ID",
        "this runner's id, unique in the account (default: pipeworker-<host>-<pid>-<random>)",
        "taskrunner_id",
    ),
    Setting(
        "hostname",
        ("--hostname",),
        str,
        "NAME",
        "the host name reported to the service (default: this host's FQDN)",
        "hostname",
    ),
    Setting(
        "concurrency",
        ("--concurrency", "--tasks"),
        _positive_int,
        "N",
        "the most tasks run at once (Worker default: 10)",
        "max_concurrency",
    ),
    Setting(
        "progress_interval",
        ("--progress-interval",),
        _seconds,
        "SECONDS",
        "seconds between progress reports of a running task (Worker default: 60)",
        "progress_interval",
    ),
    Setting(
        "heartbeat_interval",
        ("--heartbeat-interval",),
        _seconds,
        "SECONDS",
        "seconds between runner heartbeats (Worker default: 900)",
        "heartbeat_interval",
    ),
    Setting(
        "shutdown_grace",
        ("--shutdown-grace",),
        _seconds,
        "SECONDS",
        "seconds running tasks get to finish after a stop is asked for (Worker default: 30)",
        "shutdown_grace",
    ),
    Setting(
        "transport",
        ("--transport",),
        _choice("lean", "aiobotocore"),
        "NAME",
        "how the hot calls are sent: lean (signed JSON over aiohttp) or aiobotocore "
        "(default: the service's own, lean)",
    ),
    Setting(
        "http_port",
        ("--http-port",),
        _port,
        "PORT",
        "serve /healthz, /readyz and /metrics on this port (0: any free one); with --check, "
        "probe a running worker's /healthz on it instead (default: no endpoint)",
        "http_port",
    ),
    Setting(
        "http_host",
        ("--http-host",),
        str,
        "HOST",
        "the address the endpoint binds, and --check probes (default: 127.0.0.1)",
        "http_host",
    ),
    Setting(
        "rate_limits",
        ("--rate-limits",),
        _rate_limits,
        "MODE",
        "pace calls by the account's rate limits: service (the documented budgets), off, or "
        "auto (service on AWS, off for any other endpoint) (Worker default: auto)",
        "rate_limits",
    ),
    Setting(
        "log_level",
        ("--log-level",),
        _choice("debug", "info", "warning", "error", "critical"),
        "LEVEL",
        "debug, info, warning, error or critical (default: info)",
    ),
    Setting(
        "log_format",
        ("--log-format",),
        _choice("text", "json"),
        "FORMAT",
        "text, or json for one object per line (default: text)",
    ),
)

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # argparse prints and exits 2 itself; raising lets main() return the code instead.
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every default is None so environment variables can fill the gaps."""
    parser = _Parser(
        prog="python -m pipeworker",
        description="Run a pipeworker Worker: poll AWS Data Pipeline for tasks and run them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
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
    for setting in SETTINGS:
        parser.add_argument(
            *setting.flags,
            dest=setting.dest,
            metavar=setting.metavar,
            help=f"{setting.help} [{setting.env}]",
        )
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
    return parser


@dataclass(frozen=True)
class Options:
    """The parsed command line, settings resolved from flags and the environment.

    Attributes:
        app: the import string.
        factory: whether the attribute is a factory.
        settings: the settings that were given, by ``Setting.dest``; absent means "not given".
        sources: where each given setting came from (``--concurrency``, ``PIPEWORKER_REGION``).
        check: ``--check``.
        local: ``--local``.
        pipeline: ``--pipeline``.
        keep_running: ``--keep-running``.
    """

    app: str
    factory: bool
    settings: Mapping[str, Any]
    sources: Mapping[str, str]
    check: bool
    local: bool
    pipeline: str | None
    keep_running: bool

    @property
    def log_level(self) -> str:
        """The log level, ``info`` unless given."""
        return str(self.settings.get("log_level", "info"))

    @property
    def log_format(self) -> str:
        """The log format, ``text`` unless given."""
        return str(self.settings.get("log_format", "text"))


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> Options:
    """Parse *argv* and fill unset settings from *environ*.

    Raises:
        UsageError: a bad option, or a value that is not of the setting's kind.
    """
    namespace = build_parser().parse_args(argv)
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        text = getattr(namespace, setting.dest)
        source = setting.flags[0]
        if text is None:
            text = environ.get(setting.env) or None
            source = setting.env
        if text is None:
            continue
        try:
            settings[setting.dest] = setting.convert(text)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
        sources[setting.dest] = source
    if namespace.local and "endpoint_url" in settings:
        raise UsageError(
            f"{sources['endpoint_url']} cannot be used with --local, which runs its own endpoint"
        )
    for flag, given in (
        ("--pipeline", namespace.pipeline),
        ("--keep-running", namespace.keep_running),
    ):
        if given and not namespace.local:
            raise UsageError(f"{flag} only applies with --local")
    return Options(
        app=namespace.app,
        factory=namespace.factory,
        settings=settings,
        sources=sources,
        check=namespace.check,
        local=namespace.local,
        pipeline=namespace.pipeline,
        keep_running=namespace.keep_running,
    )


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


def apply_settings(worker: Worker, options: Options) -> None:
    """Rebuild the worker's frozen config with the given settings over its own values.

    The new config goes through ``Worker``'s own constructor, so a bad value is refused with
    the same message a bad ``Worker(...)`` argument gets, plus where the value came from.

    Raises:
        ConfigurationError: a setting is invalid.
    """
    from pipeworker.exceptions import ConfigurationError
    from pipeworker.worker import Worker

    config = worker.config
    transport = options.settings.get("transport")
    if transport is not None and getattr(config.service, "transport", None) != transport:
        with_transport = getattr(config.service, "with_transport", None)
        if with_transport is None:
            raise ConfigurationError(
                f"{options.sources['transport']}: the {config.service.name} service has no "
                "transport switch"
            )
        worker.config = config = dataclasses.replace(config, service=with_transport(transport))
    values: dict[str, Any] = {
        "region": config.region,
        "endpoint_url": config.endpoint_url,
        "taskrunner_id": config.taskrunner_id,
        "hostname": config.hostname,
        "max_concurrency": config.max_concurrency,
        "progress_interval": config.progress_interval,
        "heartbeat_interval": config.heartbeat_interval,
        "shutdown_grace": config.shutdown_grace,
        "http_port": config.http_port,
        "http_host": config.http_host,
        "loop_stall_threshold": config.loop_stall_threshold,
        "health_max_loop_lag": config.health_max_loop_lag,
        "ready_max_call_age": config.ready_max_call_age,
        "rate_limits": config.rate_limits,
    }
    given: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.worker_param and setting.dest in options.settings:
            values[setting.worker_param] = options.settings[setting.dest]
            given[setting.worker_param] = options.sources[setting.dest]
    if not given:
        return
    try:
        # A plain Worker validates the values; only its config is kept.
        rebuilt = Worker(service=config.service, **values)
    except ConfigurationError as exc:
        message = str(exc)
        # The service's own checks name the wire member (taskrunnerId), Worker names its argument.
        lowered = message.lower()
        origins = [
            source
            for param, source in given.items()
            if param in message or param.replace("_", "") in lowered
        ]
        suffix = f" (from {', '.join(origins)})" if origins else ""
        raise ConfigurationError(message + suffix) from exc
    worker.config = rebuilt.config


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
    shown = {
        "region": config.region or "(from the AWS settings)",
        "endpoint_url": config.endpoint_url or "(AWS)",
        "taskrunner_id": config.taskrunner_id,
        "hostname": config.hostname,
        "max_concurrency": str(config.max_concurrency),
        "progress_interval": f"{config.progress_interval:g}s",
        "heartbeat_interval": f"{config.heartbeat_interval:g}s",
        "shutdown_grace": f"{config.shutdown_grace:g}s",
        "http_port": "(no endpoint)" if config.http_port is None else str(config.http_port),
        "http_host": config.http_host,
        "rate_limits": _describe_rate_limits(config),
    }
    sources = {
        s.worker_param: options.sources[s.dest] for s in SETTINGS if s.dest in options.sources
    }
    width = max(map(len, shown))
    for name, value in shown.items():
        origin = f"  ({sources[name]})" if name in sources else ""
        print(f"  {name.ljust(width)}  {value}{origin}")
    plural = "y" if len(activities) == 1 else "ies"
    print(f"OK: {len(activities)} activit{plural} on {len(groups)} {queue_name}(s)")


def _describe_rate_limits(config: Any) -> str:
    from pipeworker._pacing import resolve_rate_limits

    setting = config.rate_limits
    limits = resolve_rate_limits(setting, config.service, config.endpoint_url)
    name = "off" if setting is None else setting if isinstance(setting, str) else "custom"
    if limits is None:
        return name if name == "off" else f"{name} (off for this endpoint)"
    budgets = sorted({f"{limit.operation} {limit.rate:g}/s" for limit in limits.values()})
    return f"{name}: {', '.join(budgets)}"


def _fail(message: str, details: str | None = None) -> None:
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    sys.stderr.write(f"pipeworker: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 stopped, 1 failed, 2 usage error).

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(args, os.environ)
    except UsageError as exc:
        build_parser().print_usage(sys.stderr)
        _fail(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK

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
            )
        except (ConfigurationError, LocalRunError) as exc:
            _fail(str(exc))
            return EXIT_USAGE
    return _run(worker)


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


def _run(worker: Worker) -> int:
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
    return EXIT_OK
