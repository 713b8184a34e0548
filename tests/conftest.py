"""Fixtures shared by the suites; none applies by itself.

A directory opts in from its own ``conftest.py`` (``fake_credentials`` and ``no_backoff`` are
usually made autouse there), and overrides a fixture where its tests need something else.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeworker import _retry
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import FAST, client_config, fake_aws_environment


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials and region; the machine's AWS settings are not read."""
    fake_aws_environment(monkeypatch)


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Retries without backoff, for tests whose faults would otherwise make them wait."""
    _retry.set_testing(True)
    yield
    _retry.set_testing(False)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """A running local service with :data:`~tests.helpers.FAST` time rules."""
    async with LocalService(FAST) as running:
        yield running


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Awaitable[LocalService]]]:
    """``await make_service(**rules)``: another running local service, FAST's rules overridden."""
    started: list[LocalService] = []

    async def make(**rules: Any) -> LocalService:
        settings = {
            "poll_hold": FAST.poll_hold,
            "ack_timeout": FAST.ack_timeout,
            "time_scale": FAST.time_scale,
            **rules,
        }
        running = LocalService(LocalConfig(**settings))
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    """An aiobotocore Data Pipeline client for the local service (no retries)."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=client_config(),
    ) as client:
        yield client


# -- a recording forward proxy, to show --proxy* reach every AWS call ---------------------------


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]
    protocol_version = "HTTP/1.1"  # answers S3's "Expect: 100-continue"

    def _forward(self) -> None:
        self.seen.append((urlsplit(self.path).netloc, self.headers.get("Proxy-Authorization")))
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            key: value
            for key, value in self.headers.items()
            if key.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        }
        upstream = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            upstream.request(self.command, target, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (an aborted long poll)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    """A forward proxy on 127.0.0.1: its port, and (host, Proxy-Authorization) per request."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_ProxyHandler,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's threaded server (S3, SWF) on 127.0.0.1, one for the session; tests that need
    a clean state reset it (``POST /moto-api/reset``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
