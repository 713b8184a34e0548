"""LocalService's lifecycle: start/stop without ``async with``, and a stop that ends long polls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeworker.local import LocalConfig, LocalService
from tests.helpers import calls, eventually


async def test_start_and_stop_without_async_with() -> None:
    service = LocalService(LocalConfig(poll_hold=0.1))
    with pytest.raises(RuntimeError, match="not running"):
        _ = service.endpoint_url
    await service.start()
    try:
        assert service.endpoint_url.startswith("http://127.0.0.1:")
        assert service.port != 0
        with pytest.raises(RuntimeError, match="already running"):
            await service.start()
    finally:
        await service.stop()
    await service.stop()  # a second stop is harmless


async def test_stop_answers_waiting_polls_at_once(make_client: Any) -> None:
    service = LocalService(LocalConfig(poll_hold=30.0))
    await service.start()
    dp = await make_client(service)
    poll = asyncio.create_task(dp.poll_for_task(workerGroup="nobody"))
    await eventually(lambda: calls(service, "PollForTask") == 1)  # the poll is held now
    loop = asyncio.get_running_loop()
    started = loop.time()
    await service.stop()
    assert "taskObject" not in await poll
    assert loop.time() - started < 10.0  # at once (typically ms), not after the 30 s hold


async def test_binding_a_taken_port_raises(service: LocalService) -> None:
    other = LocalService(port=service.port)
    with pytest.raises(OSError, match="in use"):
        await other.start()
