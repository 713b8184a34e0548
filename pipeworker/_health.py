"""A worker's operations side: ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP.

:class:`Operations` wraps one run of a worker: it starts the loop monitor and, when an HTTP port
is configured, the endpoint, and stops both when the run ends (nothing outlives it).

The endpoint runs in its own thread with its own event loop. A liveness probe must answer while
the worker's loop is blocked, which is exactly when it matters: served from the blocked loop it
would only time out, with no reason given. The handlers read a few values the worker's loop
writes (floats, a dict's length) and prometheus-client's registry, which is thread-safe.

- ``/healthz`` (liveness): 200 while the worker runs and its loop is not blocked (nor lagging)
  longer than ``health_max_loop_lag``; 503 with the reason otherwise.
- ``/readyz`` (readiness): 200 once polling is armed and a service call succeeded within
  ``ready_max_call_age``; 503 with the reason otherwise (also while stopping).
- ``/metrics``: the worker's registry in Prometheus' text format.

Answers are JSON: ``{"status": "ok"}`` or ``{"status": "unhealthy", "reason": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pipeworker._loopmonitor import LoopMonitor, handler_code
from pipeworker._metrics import Metrics
from pipeworker.exceptions import ConfigurationError

if TYPE_CHECKING:
    from aiohttp import web

    from pipeworker._supervisor import Supervisor
    from pipeworker.worker import Activity, WorkerConfig

__all__ = ["Health", "HttpServer", "Operations", "build_app"]

log = logging.getLogger("pipeworker.health")


class Health:
    """Liveness and readiness of one worker run, computed when asked (from any thread)."""

    def __init__(
        self,
        config: WorkerConfig,
        metrics: Metrics | None,
        monitor: LoopMonitor | None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._monitor = monitor
        self.supervisor: Supervisor | None = None
        self.armed: asyncio.Event | None = None
        """Set by the supervisor once polling is armed."""

    def live(self) -> tuple[bool, str | None]:
        """``(True, None)`` when live, else ``(False, reason)``."""
        supervisor = self.supervisor
        if supervisor is None or supervisor.stopped.is_set():
            return False, "the worker is not running"
        monitor = self._monitor
        limit = self._config.health_max_loop_lag
        if monitor is not None:
            blocked = monitor.blocked_for()
            if blocked > limit:
                stall = monitor.stall
                by = f" by {stall.describe()}" if stall is not None else ""
                return False, f"event loop blocked for {blocked:.1f}s{by} (limit {limit:g}s)"
            if monitor.lag > limit:
                return False, f"event loop lag {monitor.lag:.1f}s (limit {limit:g}s)"
        return True, None

    def ready(self) -> tuple[bool, str | None]:
        """``(True, None)`` when ready for work, else ``(False, reason)``."""
        live, reason = self.live()
        if not live:
            return live, reason
        supervisor = self.supervisor
        assert supervisor is not None
        if supervisor.stopping:
            return False, "the worker is stopping"
        if self.armed is None or not self.armed.is_set():
            return False, "polling is not armed yet"
        last = self._metrics.last_call_ok if self._metrics is not None else None
        if last is None:
            return False, "no service call has succeeded yet"
        age = time.monotonic() - last
        window = self._config.ready_max_call_age
        if age > window:
            return False, f"the last successful service call was {age:.0f}s ago (limit {window:g}s)"
        return True, None


def _answer(ok: bool, reason: str | None, good: str, bad: str) -> web.Response:
    from aiohttp import web

    body: dict[str, Any] = {"status": good} if ok else {"status": bad, "reason": reason}
    return web.json_response(body, status=200 if ok else 503)


def build_app(health: Health, metrics: Metrics) -> web.Application:
    """The aiohttp application serving ``/healthz``, ``/readyz`` and ``/metrics``."""
    from aiohttp import web
    from prometheus_client.aiohttp import make_aiohttp_handler

    async def healthz(request: web.Request) -> web.Response:
        return _answer(*health.live(), "ok", "unhealthy")

    async def readyz(request: web.Request) -> web.Response:
        return _answer(*health.ready(), "ready", "not ready")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    return app


class HttpServer:
    """An aiohttp app served from its own thread and event loop; start and stop from a loop."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._started: Future[int] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        """The port bound, once started (the one picked when asked for port 0)."""

    async def start(self) -> None:
        """Bind and serve; returns once the port is bound.

        Raises:
            ConfigurationError: the address cannot be bound (in use, or not this host's).
        """
        self._thread = threading.Thread(target=self._run, name="pipeworker-http", daemon=True)
        self._thread.start()
        try:
            self.port = await asyncio.wrap_future(self._started)
        except OSError as exc:
            await asyncio.to_thread(self._thread.join)
            raise ConfigurationError(
                f"cannot serve the health endpoint on {self._host}:{self._port}: {exc}; "
                "choose another http_port (0 picks a free one)"
            ) from exc

    async def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, done = self._loop, self._done
        if loop is not None and done is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already closed
                loop.call_soon_threadsafe(done.set)
        await asyncio.to_thread(thread.join, 10.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # reported to start(); never raised in this thread
            if not self._started.done():
                self._started.set_exception(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        from aiohttp import web

        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            self._done = asyncio.Event()
            self._loop = loop
            self._started.set_result(int(runner.addresses[0][1]))
            await self._done.wait()
        finally:
            await runner.cleanup()


def _code_names(activities: Sequence[Activity]) -> dict[Any, str]:
    names = {}
    for activity in activities:
        code = handler_code(activity.handler)
        if code is not None:
            names[code] = activity.name
    return names


class Operations:
    """The metrics, loop monitor and HTTP endpoint of a worker, around each of its runs."""

    def __init__(self, config: WorkerConfig, metrics: Metrics | None) -> None:
        self.config = config
        self.metrics = metrics
        self.server: HttpServer | None = None

    @property
    def url(self) -> str | None:
        """``http://host:port`` of the endpoint while it is served."""
        server = self.server
        if server is None or server.port is None:
            return None
        host = self.config.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{server.port}"

    @asynccontextmanager
    async def running(
        self, supervisor: Supervisor, activities: Sequence[Activity], armed: asyncio.Event
    ) -> AsyncIterator[Health]:
        """Monitor the loop and serve the endpoint while the body runs *supervisor*.

        *armed* is the event the supervisor sets once polling is armed (readiness).
        """
        config = self.config
        metrics = self.metrics
        monitor = None
        if config.loop_stall_threshold is not None:

            def describe(current: object) -> dict[str, str] | None:
                for task, handler in list(supervisor._running.items()):
                    if handler is current:
                        return task.log_extra()
                return None

            monitor = LoopMonitor(
                config.loop_stall_threshold,
                handlers=_code_names(activities),
                describe=describe,
                on_stall=metrics.loop_stalls.inc if metrics is not None else None,
            )
        health = Health(config, metrics, monitor)
        health.supervisor = supervisor
        health.armed = armed
        if metrics is not None:
            metrics.attach(
                activities,
                capacity=config.max_concurrency,
                leases=supervisor.leases,
                in_flight=lambda: supervisor.running,
                loop_lag=monitor.current_lag if monitor is not None else None,
            )
        try:
            if monitor is not None:
                monitor.start()
            if config.http_port is not None and metrics is not None:
                self.server = HttpServer(
                    build_app(health, metrics), config.http_host, config.http_port
                )
                await self.server.start()
                log.info(
                    "health and metrics on %s (/healthz, /readyz, /metrics)",
                    self.url,
                )
            yield health
        finally:
            server, self.server = self.server, None
            if server is not None:
                await server.stop()
            if monitor is not None:
                monitor.stop()
            if metrics is not None:
                metrics.detach()
