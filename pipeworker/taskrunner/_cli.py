"""``pipeworker-taskrunner`` / ``python -m pipeworker.taskrunner``: parse, build the runner, run.

``--local`` goes through the same driver as ``python -m pipeworker app:worker --local``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeworker.cli import parse_command_line
from pipeworker.taskrunner._options import (
    DEFAULT_TASKS,
    PROG,
    Options,
    build_parser,
    export_environment,
    parse_options,
    proxy_in_environment,
)

if TYPE_CHECKING:
    from pipeworker.taskrunner._runner import TaskRunner

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("pipeworker.taskrunner")


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _file_formatter(fmt: str) -> logging.Formatter:
    from pipeworker._logging import JsonFormatter, TextFormatter

    if fmt == "json":
        return JsonFormatter()

    class FileFormatter(TextFormatter):
        # Log files outlive a day: full UTC dates, not the console's time of day.
        converter = staticmethod(time.gmtime)

        def __init__(self) -> None:
            logging.Formatter.__init__(
                self,
                "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s",
                "%Y-%m-%dT%H:%M:%S",
            )

    return FileFormatter()


def build_runner(options: Options) -> TaskRunner:
    """The :class:`~pipeworker.taskrunner.TaskRunner` for *options*, settings applied.

    Raises:
        ConfigurationError: a worker group or setting the worker refuses.
    """
    from pipeworker import DataPipeline
    from pipeworker.cli import apply_settings
    from pipeworker.taskrunner._runner import RunnerSettings, TaskRunner

    transport = options.settings.get("transport")
    if transport is None and (options.proxy_url or proxy_in_environment(os.environ)):
        # The lean transport does not go through proxies; aiobotocore honours HTTPS_PROXY.
        transport = "aiobotocore"
    elif transport == "lean" and (options.proxy_url or proxy_in_environment(os.environ)):
        log.warning("--transport lean ignores the proxy: Data Pipeline calls go direct")
    runner = TaskRunner(
        RunnerSettings(
            worker_groups=options.worker_groups,
            output=options.output,
            log_uri=options.log_uri,
            log_interval=options.log_interval,
            kill_after=options.kill_grace,
            formatter=_file_formatter(options.log_format),
        ),
        service=DataPipeline(transport=transport or "lean"),
        max_concurrency=DEFAULT_TASKS,
    )
    apply_settings(runner, options)
    return runner


def main(argv: Sequence[str] | None = None) -> int:
    """Run the task runner; return the exit code (0 stopped, 1 failed, 2 usage error)."""
    options = parse_command_line(parse_options, build_parser, argv, PROG)
    if isinstance(options, int):
        return options
    try:
        options.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"--output: cannot create {options.output}: {exc.strerror}")
        return EXIT_USAGE

    from pipeworker import ConfigurationError
    from pipeworker._logging import configure

    configure(options.log_level, options.log_format)
    export_environment(options)
    try:
        runner = build_runner(options)
    except ConfigurationError as exc:
        _fail(str(exc))
        return EXIT_USAGE

    try:
        runner.start_log_file()
    except OSError as exc:
        _fail(f"--output: cannot write the log in {options.output}: {exc.strerror}")
        return EXIT_USAGE
    if options.local:
        from pipeworker._localrun import LocalRunError, run_local

        try:
            return run_local(
                runner,
                sys.modules[__name__],
                pipeline=options.pipeline,
                keep_running=options.keep_running,
                region=options.settings.get("region"),
            )
        except (ConfigurationError, LocalRunError) as exc:
            _fail(str(exc))
            return EXIT_USAGE
    from pipeworker.cli import run_worker

    return run_worker(runner)


def console() -> None:
    """The ``pipeworker-taskrunner`` console script and ``python -m pipeworker.taskrunner``."""
    from pipeworker.cli import run_main

    run_main(main)
