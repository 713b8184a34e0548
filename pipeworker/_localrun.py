"""``--local``: run a worker against the built-in local service, in this process, on one loop.

The driver starts :class:`pipeworker.local.LocalService`, creates, defines and activates a pipeline
through the real API (aiobotocore against the local endpoint, as a user's own scripts would), points
the worker at it, and watches the pipeline's activity instances with QueryObjects/DescribeObjects
until every one has ended. Durations in the definition run :data:`TIME_SCALE` times as long
(retries come after seconds, not minutes), and tasks report progress at least every second.

Progress is a live display on a terminal and a plain line per change otherwise (CI logs, pipes);
a table of every activity instance closes the run (``pipeworker._display``).

The app declares the definition ``--local`` runs by default with a module attribute::

    PIPELINE_DEFINITION = "hello.json"      # a path, relative to the module's own file

Parameters are given as the AWS CLI takes them: ``--parameter-values KEY=VALUE`` (repeatable),
``--parameter-values-uri FILE`` and ``--parameter-objects FILE``. Values given override the file's
own ``values``.

Worker groups: an activity with ``runsOn`` is polled on its resource's group,
``<pipelineId>/<resourceId>`` (the local service gives each pipeline's resources their own group).
Since the pipeline id is only known once the run starts, a handler registered for the bare
resource id (``@worker.activity("EC2Resource_HelloWorld")``) serves that group here; the groups
are printed when the run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from pipeworker._display import TERMINAL as _TERMINAL
from pipeworker._display import ActivityClock, keep_running_banner, open_display
from pipeworker._display import Row as _Row
from pipeworker._events import combine
from pipeworker.worker import Worker

__all__ = ["DEMO_ATTRIBUTE", "LocalRunError", "run_local"]

log = logging.getLogger("pipeworker.local.run")

DEMO_ATTRIBUTE = "PIPELINE_DEFINITION"
"""The app module's attribute naming its demo definition file."""

DEFAULT_REGION = "us-east-1"
REFRESH_SECONDS = 0.2
TIME_SCALE = 0.01
"""Durations in the definition run this much faster: a 10-minute ``retryDelay`` takes 6 s."""
PROGRESS_INTERVAL = 1.0
"""The longest progress interval locally, so scaled ``reportProgressTimeout`` s still hold."""


class LocalRunError(Exception):
    """The local run cannot start: no definition, or the service refused it. Exit code 2."""


def find_definition(module: ModuleType, pipeline: str | None) -> Path:
    """The definition to run: *pipeline* if given, else the module's ``PIPELINE_DEFINITION``.

    Raises:
        LocalRunError: neither is there.
    """
    if pipeline is not None:
        return Path(pipeline)
    declared = getattr(module, DEMO_ATTRIBUTE, None)
    if declared is None:
        raise LocalRunError(
            f"no pipeline to run: pass --pipeline FILE (a definition in the JSON format of "
            f"'aws datapipeline put-pipeline-definition'), or set {DEMO_ATTRIBUTE} = "
            f"'file.json' in {module.__name__}"
        )
    path = Path(os.fspath(declared))
    if not path.is_absolute():
        module_file = getattr(module, "__file__", None)
        base = Path(module_file).parent if module_file else Path.cwd()
        path = base / path
    return path


def _ensure_credentials() -> None:
    # The local service does not check signatures, but botocore refuses to sign without
    # credentials. Only the environment and the shared files are looked at: asking botocore's
    # full chain could wait seconds on an instance-metadata endpoint that is not there.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        profile = os.environ.get(name)
        if profile and not _profile_exists(profile):
            # botocore would refuse every client, the local ones too; --local needs no profile.
            log.warning(
                "%s=%r names no profile in the AWS config or credentials file; "
                "--local needs none, so it is ignored",
                name,
                profile,
            )
            del os.environ[name]
    configured = any(os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
    shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    if configured or Path(shared).expanduser().is_file():
        return
    os.environ["AWS_ACCESS_KEY_ID"] = "AKIDLOCALFAKE"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local-fake-secret"


def _profile_exists(profile: str) -> bool:
    import botocore.session

    try:
        return profile in botocore.session.Session(profile=profile).available_profiles
    except Exception:  # an unreadable config file: botocore would fail the same way
        return False


def _region(worker: Worker, region: str | None) -> str:
    return (
        region
        or worker.config.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def run_local(
    worker: Worker,
    module: ModuleType,
    *,
    pipeline: str | None = None,
    keep_running: bool = False,
    region: str | None = None,
    out: IO[str] | None = None,
    parameter_values: Sequence[str] = (),
    parameter_values_uri: str | None = None,
    parameter_objects: str | None = None,
) -> int:
    """Run *worker* against an in-process local service until the pipeline is done.

    Args:
        worker: the app's worker; its endpoint and region are replaced by the local service's.
        module: the app's module, where ``PIPELINE_DEFINITION`` is looked up.
        pipeline: a definition file to run instead of the module's own.
        keep_running: stay up after the pipeline is done until SIGINT/SIGTERM.
        region: the region for the clients (any name works locally).
        out: where progress and the summary go; stdout by default.
        parameter_values: ``KEY=VALUE`` items, as ``--parameter-values`` takes them.
        parameter_values_uri: a ``{"values": {...}}`` file.
        parameter_objects: a ``{"parameters": [...]}`` file replacing the definition's own.

    Returns:
        0 when every activity instance finished, 1 when one failed or the worker failed.

    Raises:
        LocalRunError: there is no definition, or the service refused it.
    """
    from pipeworker.local._deffile import (
        DefinitionFileError,
        command_line_parameters,
        load_definition_file,
        with_parameters,
    )

    path = find_definition(module, pipeline)
    try:
        definition = load_definition_file(path)
        given = command_line_parameters(parameter_values, parameter_values_uri, parameter_objects)
    except DefinitionFileError as exc:
        raise LocalRunError(str(exc)) from exc
    definition = with_parameters(definition, given)
    _ensure_credentials()
    driver = _Driver(worker, path, definition, _region(worker, region), out or sys.stdout)
    code = asyncio.run(driver.run(keep_running))
    if driver.forced:
        _exit_now_if_handlers_linger(code)
    return code


def _exit_now_if_handlers_linger(code: int) -> None:
    # A forced stop abandons the running tasks, but a sync handler's thread cannot be stopped:
    # the interpreter would wait for it at exit (concurrent.futures joins its threads), and the
    # second Ctrl-C would not end the run after all. The service dies with this process, so
    # nothing is left to report to.
    lingering = [
        thread.name
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if not lingering:
        return
    log.warning(
        "forced stop: not waiting for %d handler thread(s) still running: %s",
        len(lingering),
        ", ".join(lingering),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _Driver:
    def __init__(
        self, worker: Worker, path: Path, definition: Mapping[str, Any], region: str, out: IO[str]
    ) -> None:
        self.worker = worker
        self.path = path
        self.definition = definition
        self.region = region
        self.out = out
        self.display = open_display(out)
        self.clock = ActivityClock()
        self.stop_requested = asyncio.Event()
        self.forced = False
        self._serving: asyncio.Task[None] | None = None

    def say(self, text: str) -> None:
        self.display.say(text)

    async def run(self, keep_running: bool) -> int:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        from pipeworker.local import LocalConfig, LocalService

        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._interrupted, signum)
                installed.append(signum)
        self.display.start()
        try:
            async with (
                # The service's real poll hold: a stop aborts polls in flight, and an idle
                # --keep-running then costs one poll per worker group every 90 s.
                LocalService(LocalConfig(time_scale=TIME_SCALE)) as service,
                get_session().create_client(
                    "datapipeline",
                    region_name=self.region,
                    endpoint_url=service.endpoint_url,
                    config=AioConfig(retries={"total_max_attempts": 1}),
                ) as client,
            ):
                self.say(f"local Data Pipeline service at {service.endpoint_url}")
                pipeline_id = await self._activate(client)
                config = self.worker.config
                self.worker.config = dataclasses.replace(
                    config,
                    endpoint_url=service.endpoint_url,
                    region=self.region,
                    progress_interval=min(config.progress_interval, PROGRESS_INTERVAL),
                    # Pace only what the local service limits: it enforces no rate limits here.
                    rate_limits="service" if service.config.rate_limits else None,
                )
                return await self._supervise(
                    client, pipeline_id, service.endpoint_url, keep_running
                )
        finally:
            self.display.close()
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _interrupted(self, signum: int) -> None:
        """The first SIGINT/SIGTERM stops gracefully; the next one abandons the running tasks."""
        name = signal.Signals(signum).name
        if not self.stop_requested.is_set():
            self.say(f"{name}: stopping; running tasks may finish (interrupt again to force)")
            self.stop_requested.set()
            return
        if self.forced:
            return
        self.forced = True
        self.say(f"{name} again: stopping now, running tasks are abandoned")
        if self._serving is not None:
            self._serving.cancel()

    async def _activate(self, client: Any) -> str:
        name = self.path.stem
        created = await client.create_pipeline(name=name, uniqueId=f"pipeworker-local-{name}")
        pipeline_id: str = created["pipelineId"]
        answer = await client.put_pipeline_definition(pipelineId=pipeline_id, **self.definition)
        for warning in answer.get("validationWarnings", []):
            for text in warning.get("warnings", []):
                self.say(f"warning: {warning.get('id')}: {text}")
        if answer.get("errored"):
            problems = [
                f"{error.get('id')}: {text}"
                for error in answer.get("validationErrors", [])
                for text in error.get("errors", [])
            ]
            raise LocalRunError(
                f"{self.path}: the definition was refused: "
                + "; ".join(problems or ["(no detail)"])
            )
        await client.activate_pipeline(pipelineId=pipeline_id)
        self.say(f"pipeline {pipeline_id} ({self.path}) activated")
        return pipeline_id

    def _route_resources(self, rows: list[_Row], pipeline_id: str) -> None:
        """Let handlers registered for a bare resource id serve that resource's group."""
        registered = list(self.worker.activities.values())
        polled = {activity.queue for activity in registered}
        prefix = pipeline_id + "/"
        for group in sorted({row.worker_group for row in rows}):
            if group in polled or not group.startswith(prefix):
                continue
            for activity in registered:
                if activity.queue == group[len(prefix) :]:
                    self.worker.activity(group, type=activity.type)(activity.handler)

    def _list_groups(self, rows: list[_Row]) -> None:
        by_group: dict[str, list[str]] = {}
        for row in rows:
            by_group.setdefault(row.worker_group, []).append(
                row.name + (f" (runsOn {row.runs_on})" if row.runs_on else "")
            )
        self.say("worker groups to poll:")
        for group, names in sorted(by_group.items()):
            self.say(f"  {group or '(none)'}: {', '.join(sorted(names))}")

    def _check_groups(self, rows: list[_Row]) -> None:
        polled = {activity.queue for activity in self.worker.activities.values()}
        stranded = sorted(
            f"{row.name} ({row.worker_group or 'no workerGroup'})"
            for row in rows
            if row.worker_group not in polled and row.status not in _TERMINAL
        )
        if stranded:
            raise LocalRunError(
                f"{self.path}: these activities would wait forever, as no handler of this worker "
                f"serves their worker group: {', '.join(stranded)}; the worker polls "
                f"{', '.join(sorted(polled))}"
            )

    async def _supervise(
        self, client: Any, pipeline_id: str, endpoint_url: str, keep_running: bool
    ) -> int:
        first = await self._rows(client, pipeline_id)
        if not first:
            # Nothing would ever run, and nothing would ever end the run.
            raise LocalRunError(
                f"{self.path}: the definition has no activity, so there is nothing to run: "
                "add an object whose type ends in 'Activity' (like ShellCommandActivity) "
                "with a workerGroup this worker serves"
            )
        self._list_groups(first)
        self._route_resources(first, pipeline_id)
        self._check_groups(first)
        # Private, as the worker offers no public way to add an observer after construction.
        self.worker._observer = combine(self.clock, self.worker._observer)
        serving = asyncio.create_task(self.worker.serve(), name="pipeworker-local-worker")
        self._serving = serving
        if self.forced:  # interrupted twice while the pipeline was being activated
            serving.cancel()
        started = time.monotonic()
        rows: list[_Row] = []
        worker_error: BaseException | None = None
        try:
            while True:
                rows = await self._rows(client, pipeline_id)
                self.display.progress(rows, time.monotonic() - started)
                if rows and all(row.status in _TERMINAL for row in rows):
                    break
                if serving.done() or self.stop_requested.is_set():
                    break
                stopped = asyncio.create_task(self.stop_requested.wait())
                await asyncio.wait({serving, stopped}, timeout=REFRESH_SECONDS)
                stopped.cancel()
            self.display.summary(rows, time.monotonic() - started, self.clock)
            if keep_running and not serving.done() and not self.stop_requested.is_set():
                self._list_groups(rows)
                for line in keep_running_banner(endpoint_url, self.region):
                    self.say(line)
                stopped = asyncio.create_task(self.stop_requested.wait())
                await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
        finally:
            if not serving.done():
                # Ask for the stop, but wait for the worker itself: a second interrupt cancels
                # it, which ends this wait at once, whatever the grace left.
                stopping = asyncio.create_task(self.worker.stop())
                try:
                    await asyncio.wait({serving})
                finally:
                    stopping.cancel()
            try:
                await serving
            except asyncio.CancelledError:
                if not (self.forced and serving.cancelled()):
                    raise
            except Exception as exc:
                worker_error = exc
        if worker_error is not None:
            from pipeworker.exceptions import ConfigurationError

            if isinstance(worker_error, ConfigurationError):
                raise worker_error
            log.critical("the worker failed: %s", worker_error, exc_info=worker_error)
            return 1
        if not rows or any(row.status != "FINISHED" for row in rows):
            return 1
        return 0

    async def _rows(self, client: Any, pipeline_id: str) -> list[_Row]:
        ids: list[str] = []
        marker = ""
        while True:
            page = await client.query_objects(
                pipelineId=pipeline_id, sphere="INSTANCE", marker=marker, limit=100
            )
            ids += page.get("ids", [])
            if not page.get("hasMoreResults"):
                break
            marker = page["marker"]
        from pipeworker.local._activation import resource_worker_group

        described: dict[str, dict[str, str]] = {}
        names: dict[str, str] = {}
        for start in range(0, len(ids), 25):
            answer = await client.describe_objects(
                pipelineId=pipeline_id, objectIds=ids[start : start + 25]
            )
            for obj in answer["pipelineObjects"]:
                fields: dict[str, str] = {}
                for field in obj["fields"]:
                    fields.setdefault(field["key"], field.get("stringValue", field.get("refValue")))
                described[obj["id"]] = fields
                names[obj["id"]] = obj["name"]
        rows: list[_Row] = []
        for object_id, fields in described.items():
            if not fields.get("type", "").endswith("Activity"):
                continue  # data nodes and resources: not work anyone waits for
            group = fields.get("workerGroup", "")
            runs_on = ""
            if "runsOn" in fields:
                target = described.get(fields["runsOn"], {})
                runs_on = target.get("@componentParent", fields["runsOn"])
                group = resource_worker_group(pipeline_id, runs_on)
            rows.append(
                _Row(
                    id=object_id,
                    name=names[object_id],
                    status=fields.get("@status", "?"),
                    started=fields.get("@actualStartTime", ""),
                    ended=fields.get("@actualEndTime", ""),
                    error=fields.get("errorMessage", ""),
                    worker_group=group,
                    runs_on=runs_on,
                )
            )
        return rows
