"""The Worker: the activity registry and its decorator, lifecycle hooks, and how a worker runs.

::

    worker = Worker(max_concurrency=4)

    @worker.activity("wg-12345")
    async def export(task: Task) -> None: ...

    worker.run()                  # blocking, with signal handling
    await worker.serve()          # embedded: runs until stopped, no signal handlers
    async with worker: ...        # embedded: returns once polling is armed

The settings (:class:`WorkerConfig`, checked once) are in ``pipeworker._config``; the supervision
itself (polls, leases, retries, shutdown) is in ``pipeworker._supervisor``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, Unpack

from pipeworker._activities import (
    MARK,
    Activity,
    ActivityDecorator,
    Handler,
    R,
    _Register,
    is_async,
)

# WorkerConfig and PROGRESS_JITTER live in _config; they stay importable from here.
from pipeworker._config import PROGRESS_JITTER as PROGRESS_JITTER
from pipeworker._config import WorkerConfig, WorkerSettings, make_config, settings_doc
from pipeworker._context import inside_worker
from pipeworker.exceptions import ConfigurationError
from pipeworker.services.base import Outcome, Service
from pipeworker.task import BaseTask

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from pipeworker._events import Observer
    from pipeworker._health import Operations
    from pipeworker._metrics import Metrics
    from pipeworker.services._dptask import Task

# T is the task class of the worker's service: Task (Data Pipeline, the default), ActivityTask
# (SWF) or StepFunctionsTask. PEP 696's default makes Worker() with no service a Worker[Task];
# only the type checker needs it, and typing_extensions is not a run-time dependency.
if TYPE_CHECKING:
    from typing_extensions import TypeVar

    T = TypeVar("T", bound=BaseTask, default=Task)
else:
    T = typing.TypeVar("T", bound=BaseTask)

__all__ = ["Activity", "Handler", "Worker", "WorkerConfig", "is_async"]

# Activity, Handler and is_async live in pipeworker._activities; they stay importable from here.

log = logging.getLogger("pipeworker.worker")


class Worker(Generic[T]):
    """A task runner: register handlers with :attr:`activity`, then run it.

    Generic over its service's task class: ``Worker(service=SWF(...))`` is a
    ``Worker[ActivityTask]``, so a handler annotated with another service's task is a type
    error (and a ConfigurationError at registration).

    Subclassing is the pattern for workers that hold resources: declare activities as methods
    with ``@Worker.activity(...)`` and override the lifecycle hooks::

        class Exporter(Worker):
            def __init__(self, *, dsn: str, **settings: Unpack[WorkerSettings]) -> None:
                super().__init__(**settings)
                self.dsn = dsn

            async def on_startup(self) -> None:
                self.db = await connect(self.dsn)

            async def on_shutdown(self) -> None:
                await self.db.close()

            @Worker.activity("wg-export")
            async def export(self, task: Task) -> None:
                await self.db.copy(task.field("table"))

    Each instance registers its own bound methods, so instances never share registrations.

    Args:
        service: the service to poll; ``DataPipeline()`` by default, or ``SWF(domain=...)``,
            ``StepFunctions()``.
        observer: told about every event of the running worker (see ``pipeworker._events``),
            beside the metrics; None by default.
        **settings: the settings below (:class:`~pipeworker._config.WorkerSettings`), each
            checked once into the frozen :attr:`config`. Durations are seconds or a timedelta.

    Settings (from the table in ``pipeworker._config``; each with flags can also be given on
    the command line or by its ``PIPEWORKER_*`` variable, which win over these):

        {settings}

    Raises:
        ConfigurationError: a setting is invalid; the message names it.
    """

    activity = ActivityDecorator()
    """Decorator registering a handler for a worker group: ``@worker.activity("wg-1")``.

    Optional ``type="ShellCommandActivity"`` limits the handler to one activity type, so several
    handlers can share a worker group. Returns the function unchanged; a bad worker group, a
    duplicate registration or a handler that cannot take a task raises ConfigurationError at once.
    """

    def __init__(
        self,
        *,
        service: Service[T] | None = None,
        observer: Observer | None = None,
        **settings: Unpack[WorkerSettings],
    ) -> None:
        self.config = make_config(service=service, **settings)
        self._observer = observer
        self._metrics: Metrics | None = None
        self._operations: Operations | None = None
        self._activities: dict[tuple[str, str | None], Activity] = {}
        self._supervisor: Any = None
        self._serving: asyncio.Task[None] | None = None
        self._stop_requested = False  # stop() before serve() started: serve() returns at once
        self.left_behind: tuple[str, ...] = ()
        self._register_marked_methods()

    def __repr__(self) -> str:
        groups = sorted({activity.queue for activity in self._activities.values()})
        return f"<{type(self).__name__} {self.config.taskrunner_id!r} worker groups={groups}>"

    # -- registry ----------------------------------------------------------------------------

    @property
    def activities(self) -> Mapping[tuple[str, str | None], Activity]:
        """The registered handlers, by ``(worker group, activity type or None)``."""
        return dict(self._activities)

    def _decorator(self, queue: str, /, *, type: str | None = None) -> _Register[T]:
        def register(handler: Callable[[T], R]) -> Callable[[T], R]:
            self._register(queue, type, handler)
            return handler

        return register

    def _register(self, queue: str, type_: str | None, handler: Callable[..., Any]) -> None:
        name = getattr(handler, "__qualname__", None) or repr(handler)
        service = self.config.service
        if not isinstance(queue, str):
            raise ConfigurationError(
                f"activity {name}: the {service.queue_name} must be a string, got {queue!r}"
            )
        problems = service.check_queue(queue)
        if problems:
            raise ConfigurationError(
                f"activity {name}: invalid {service.queue_name} {queue!r}: {'; '.join(problems)}"
            )
        if type_ is not None and (not isinstance(type_, str) or not type_):
            raise ConfigurationError(f"activity {name}: type must be a non-empty string or None")
        if type_ is not None and not service.typed_tasks:
            raise ConfigurationError(
                f"activity {name}: {service.name} tasks carry no activity type, so type= "
                f"cannot route them; register one handler per {service.queue_name}"
            )
        if not callable(handler):
            raise ConfigurationError(f"activity {name}: the handler is not callable")
        if inspect.isasyncgenfunction(handler) or inspect.isgeneratorfunction(handler):
            raise ConfigurationError(
                f"activity {name}: a handler must be a function, not a generator"
            )
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError):
            signature = None  # some builtins have no signature; let them fail when called
        if signature is not None:
            try:
                signature.bind(object())
            except TypeError:
                raise ConfigurationError(
                    f"activity {name}: a handler takes exactly one argument, the task; its "
                    f"signature is {name.rsplit('.', 1)[-1]}{signature}"
                ) from None
        annotated = _task_annotation(handler, signature)
        if annotated is not None and not issubclass(service.task_class, annotated):
            raise ConfigurationError(
                f"activity {name}: it is annotated to take {annotated.__name__}, but "
                f"{service.name} handlers get {service.task_class.__name__}"
            )
        key = (queue, type_)
        queues = {activity.queue for activity in self._activities.values()} | {queue}
        self._check_capacity(len(queues), self.config.max_concurrency)
        existing = self._activities.get(key)
        if existing is not None:
            scope = f"type {type_!r} on " if type_ else ""
            raise ConfigurationError(
                f"activity {name}: {scope}{service.queue_name} {queue!r} is already handled "
                f"by {existing.name}"
            )
        self._activities[key] = Activity(queue, type_, handler, is_async(handler), name)

    def _check_capacity(self, queues: int, max_concurrency: int) -> None:
        if queues > max_concurrency:
            service = self.config.service
            raise ConfigurationError(
                f"max_concurrency={max_concurrency} is below the {queues} {service.queue_name}s "
                f"registered: each {service.queue_name} keeps one poll (and so one slot) in "
                f"flight, so at least {queues} are needed; raise max_concurrency"
            )

    def _register_marked_methods(self) -> None:
        seen: set[str] = set()
        for klass in type(self).__mro__:
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                marks = getattr(value, MARK, None)
                if marks:
                    bound = getattr(self, attr)
                    for queue, type_ in marks:
                        self._register(queue, type_, bound)

    # -- operations: metrics and the health endpoint -----------------------------------------

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The worker's Prometheus registry (its own, never the global one).

        Asking for it switches metrics on for the next run; a host application can serve it,
        for example with :meth:`metrics_handler`.
        """
        return self._metrics_observer().registry

    def metrics_handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An aiohttp handler serving :attr:`metrics_registry`, to mount in a host app::

        app.router.add_get("/metrics", worker.metrics_handler())
        """
        from prometheus_client.aiohttp import make_aiohttp_handler

        return make_aiohttp_handler(self.metrics_registry)

    @property
    def http_url(self) -> str | None:
        """``http://host:port`` of the health and metrics endpoint while it is served."""
        return self._operations.url if self._operations is not None else None

    def _metrics_observer(self) -> Metrics:
        if self._metrics is None:
            from pipeworker._metrics import Metrics

            self._metrics = Metrics()
        return self._metrics

    # -- lifecycle hooks (override in a subclass) ------------------------------------------

    async def on_startup(self) -> None:
        """Called once before the first poll; an exception here stops the worker from starting."""

    async def on_shutdown(self) -> None:
        """Called once after the last task has ended and before the clients close."""

    async def on_task_start(self, task: T) -> None:
        """Called just before a task's handler, in the handler's own context.

        An exception here fails the task as the handler's own exception would.
        """

    async def on_task_end(self, task: T, outcome: Outcome | None) -> None:
        """Called after a task's final status was sent.

        *outcome* is None when nothing was sent: the service cancelled the task or its lease was
        lost. An exception here is logged and otherwise ignored.
        """

    # -- running -------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until :meth:`stop` (or the service's ``terminate``); installs no signal handlers.

        Raises:
            ConfigurationError: no activity is registered, or the service cannot be reached
                with these settings (no region, no credentials).
            RuntimeError: the worker is already running.
        """
        await self._serve(None)

    async def _serve(self, ready: asyncio.Event | None) -> None:
        from pipeworker._supervisor import Supervisor

        if self._supervisor is not None:
            raise RuntimeError("this worker is already running")
        if not self._activities:
            raise ConfigurationError("no activity is registered: decorate a handler first")
        config = self.config
        self._check_capacity(
            len({activity.queue for activity in self._activities.values()}),
            config.max_concurrency,
        )
        from pipeworker._events import combine
        from pipeworker._health import Operations

        activities = list(self._activities.values())
        # Metrics only when asked for (an endpoint, or the registry): none costs nothing per task.
        metrics = self._metrics
        if metrics is None and config.http_port is not None:
            metrics = self._metrics_observer()
        observer = combine(metrics, self._observer)
        supervisor = Supervisor(config, activities, hooks=self, observer=observer)
        self._supervisor = supervisor
        self.left_behind = ()
        if self._stop_requested:
            self._stop_requested = False
            supervisor.stop()
        armed = ready if ready is not None else asyncio.Event()
        self._operations = operations = Operations(config, metrics)
        try:
            async with operations.running(supervisor, activities, armed):
                await supervisor.run(armed)
        finally:
            self._supervisor = None
            self._operations = None
            self.left_behind = tuple(supervisor.left_behind)
        if self.left_behind:
            log.warning(
                "stopped, leaving behind: %s (the service may hand their tasks to another "
                "runner while they still run)",
                "; ".join(self.left_behind),
            )

    async def stop(self) -> None:
        """Stop gracefully: no new polls, running tasks get ``shutdown_grace`` to finish.

        Returns once the worker has stopped. Called from the worker's own code (a handler or a
        hook), it only asks for the stop: waiting would wait for that code itself. Called before
        :meth:`serve` has started, it is remembered: that serve() returns without polling.
        """
        supervisor = self._supervisor
        if supervisor is None:
            self._stop_requested = True
            return
        supervisor.stop()
        if not inside_worker.get():
            await supervisor.stopped.wait()

    async def __aenter__(self) -> Self:
        if self._serving is not None or self._supervisor is not None:
            raise RuntimeError("this worker is already running")
        ready = asyncio.Event()
        self._serving = serving = asyncio.create_task(self._serve(ready), name="pipeworker")
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if serving.done():
            self._serving = None
            serving.result()  # raises what stopped it from starting
            raise RuntimeError("the worker stopped while starting")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        serving, self._serving = self._serving, None
        if serving is None:
            return
        if self._supervisor is not None:
            self._supervisor.stop()
        await serving

    def run(self) -> None:
        """Run until SIGTERM or SIGINT, which start a graceful stop; a second signal forces it.

        Blocks; creates its own event loop. A forced stop cancels running tasks without
        reporting them: the service reassigns them when their lease runs out. Either way the
        stop ends within ``shutdown_grace`` + ``shutdown_hard_deadline`` (about a second once
        forced). If it had to leave handlers behind (they ignored their cancellation),
        :attr:`left_behind` names them and run() returns without waiting for them; the process
        should then exit, so that a task handed back to the service cannot run twice (the CLI
        exits with code 1).
        """
        from pipeworker._signals import run_blocking

        run_blocking(self._serve_with_signals, lambda: bool(self.left_behind))

    def _request_stop(self, *, force: bool = False) -> None:
        supervisor = self._supervisor
        if supervisor is None:
            self._stop_requested = True
        elif force:
            supervisor.force()
        else:
            supervisor.stop()

    async def _serve_with_signals(self) -> None:
        from pipeworker._signals import handle_signals

        async with handle_signals(self._request_stop):
            await self._serve(None)


# The settings' part of the docstring comes from the table, so help(Worker) cannot drift from it.
Worker.__doc__ = (Worker.__doc__ or "").replace("        {settings}", settings_doc(" " * 8))


def _task_annotation(
    handler: Callable[..., Any], signature: inspect.Signature | None
) -> type[BaseTask] | None:
    """The task class the handler's parameter is annotated with, when that can be told."""
    if signature is None or not signature.parameters:
        return None
    name, parameter = next(iter(signature.parameters.items()))
    annotation: Any = parameter.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(handler).get(name)
        except Exception:  # a name the handler's module cannot resolve now: no check
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseTask):
        return annotation
    return None
