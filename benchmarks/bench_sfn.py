"""pipeworker's Step Functions path beside Data Pipeline and SWF: tasks per second against the
local service, in the same run of ``python -m benchmarks``.

The rows (``pipeworker Step Functions`` on both transports) run the same runner as Data
Pipeline's (``benchmarks.pipeworker_runner --service stepfunctions``), on an activity named after
the row's worker group. :func:`add_tasks` creates that activity and a one-Task state machine on it,
then starts one execution per task, through unsigned JSON calls (the local service checks no
signatures unless asked).

Calls per no-op task: Step Functions 2 (GetActivityTask, SendTaskSuccess), SWF 2, Data Pipeline 3.
Peers (:data:`PEERS`), each as its README runs it: the PyPI ``stepfunctions-activity-worker``
(a row when installed, ``pip install -e .[bench]``) and ``bevault-workers``. Every release of the
latter (0.1.2 to 0.3.0) declares ``Requires-Python >=3.13``, so pip refuses it on this project's
Python 3.11: its row (:data:`PY313_PEERS`) runs under the interpreter of a cached Python 3.13 venv
(:mod:`benchmarks._py313`), and is left out, with the reason in RESULTS.md, when there is none.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from benchmarks._local import LocalProcess

ACCOUNT_ARN = "arn:aws:states:us-east-1:123456789012"
_PIPEWORKER = ["-m", "benchmarks.pipeworker_runner"]
RUNNERS: dict[str, list[str]] = {
    f"pipeworker Step Functions{label}": [
        *_PIPEWORKER,
        *("--service", "stepfunctions", "--transport", transport),
    ]
    for label, transport in (("", "lean"), (" (aiobotocore)", "aiobotocore"))
}
"""The Step Functions rows of the throughput table, by name."""
PY313_PEERS: dict[str, list[str]] = {
    "bevault-workers": ["-m", "benchmarks.baselines.bevault_worker"],
}
"""The peers that need Python 3.13: run with :func:`benchmarks._py313.python`'s interpreter."""
PEERS: dict[str, list[str]] = {
    "stepfunctions-activity-worker": ["-m", "benchmarks.baselines.sfn_activity_worker"],
    **PY313_PEERS,
}
"""Step Functions workers a user would pick instead, by name; each prints the same JSON line."""


def installed_peers() -> dict[str, list[str]]:
    """The :data:`PEERS` installed in this interpreter (not :data:`PY313_PEERS`)."""
    found = importlib.util.find_spec("stepfunctions_activity_worker") is not None
    name = "stepfunctions-activity-worker"
    return {name: PEERS[name]} if found else {}


def activity_arn(name: str) -> str:
    """The local service's ARN of activity *name*."""
    return f"{ACCOUNT_ARN}:activity:{name}"


def is_sfn(command: Sequence[str]) -> bool:
    """Whether a runner command runs Step Functions tasks (so :func:`add_tasks` starts them)."""
    items = list(command)
    if items in PEERS.values():
        return True
    return "--service" in items and items[items.index("--service") + 1] == "stepfunctions"


async def _call(session: aiohttp.ClientSession, url: str, operation: str, body: Any) -> Any:
    headers = {
        "X-Amz-Target": f"AWSStepFunctions.{operation}",
        "Content-Type": "application/x-amz-json-1.0",
    }
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        answer = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"{operation}: {response.status} {answer}")
    return answer


async def _start(url: str, name: str, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        arn = (await _call(session, url, "CreateActivity", {"name": name}))["activityArn"]
        definition = {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": arn, "End": True}},
        }
        machine = await _call(
            session,
            url,
            "CreateStateMachine",
            {
                "name": name,
                "definition": json.dumps(definition),
                "roleArn": "arn:aws:iam::123456789012:role/bench",
            },
        )
        body = {"stateMachineArn": machine["stateMachineArn"], "input": "{}"}
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    _call(session, url, "StartExecution", body)
                    for _ in range(start, min(start + 200, count))
                )
            )


def add_tasks(local: LocalProcess, name: str, count: int) -> None:
    """Start *count* executions whose one Task state runs on activity *name*."""
    asyncio.run(_start(local.url, name, count))
