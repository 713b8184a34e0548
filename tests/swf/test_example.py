"""examples/swf_worker.py runs as its docstring says, and the CLI checks it."""

from __future__ import annotations

import json

import pytest

from pipeworker.cli import main


async def test_the_example_runs_against_the_local_service() -> None:
    from examples.swf_worker import demo

    history = await demo()
    outcomes = [(t["activityType"]["name"], t["status"]) for t in history]
    assert outcomes == [("charge", "COMPLETED"), ("charge", "FAILED"), ("ship", "COMPLETED")]
    assert json.loads(history[0]["result"]) == {"order": "o-1", "charged": 42}
    assert history[0]["lastHeartbeatDetails"] == '{"step":2,"of":3}'
    assert history[1]["reason"] == "InvalidAmount: order o-2 has no amount"
    assert history[2]["result"] == "shipped o-1"


def test_the_cli_checks_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples.swf_worker:worker", "--check"]) == 0
    out = capsys.readouterr().out
    assert "service: swf" in out
    assert "orders-activities  charge" in out
