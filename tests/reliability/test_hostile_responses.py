"""Hostile answers from the service: the runner never crashes, and no task is lost or invented.

A small aiohttp server on 127.0.0.1 stands in for the service and answers each call with what
hypothesis chooses: truncated JSON, JSON of the wrong types (``taskObject`` a list, ``fields``
without ``key``, ``stringValue`` a number, ``canceled`` a string, ``terminate`` null), members
missing, HTML 502/503 pages with and without ``text/html``, empty bodies, bodies of several MB,
wrong content types, 200s carrying ``__type``, 4xx without ``__type``, answers sent slowly, in
chunks, or cut off before their declared length.

- The connections themselves (Data Pipeline on both transports, and SWF) either return a value of
  the promised type or raise from pipeworker's tree: never ``KeyError``, ``TypeError``,
  ``AttributeError`` or ``JSONDecodeError``; a 5xx is always retried, a 4xx never is.
- A whole :class:`~pipeworker.Worker` keeps polling after garbage, leaves a task it cannot read to
  the service's lease (no acknowledgement, no status, an ERROR line naming it), and runs the next
  valid task to FINISHED through garbage answers to its progress, status and heartbeat calls.
- An answer over the lean transport's cap is dropped unread and retried, never buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeworker import DataPipeline, Task, Worker
from pipeworker.exceptions import (
    LeaseLost,
    PipeworkerError,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
)
from pipeworker.services._dptask import ReceivedAttempt, Ref
from pipeworker.services.base import Connection, ConnectionSettings, Outcome, ReceivedTask
from pipeworker.services.datapipeline import MAX_POLL_ANSWER_BYTES, MAX_REPORT_ANSWER_BYTES
from pipeworker.services.swf import SWF
from tests.helpers import eventually, fake_aws_environment
from tests.reliability.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, report

pytestmark = pytest.mark.timeout(60)

JSON11 = "application/x-amz-json-1.1"
HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
VALID_TASK: dict[str, Any] = {
    "taskId": "task-1",
    "pipelineId": "df-1",
    "attemptId": "@A_1_Attempt=1",
    "objects": {
        "@A_1_Attempt=1": {
            "id": "@A_1_Attempt=1",
            "name": "A",
            "fields": [
                {"key": "@instanceParent", "refValue": "@A_1"},
                {"key": "@status", "stringValue": "RUNNING"},
            ],
        },
        "@A_1": {
            "id": "@A_1",
            "name": "A",
            "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "command", "stringValue": "echo hi"},
            ],
        },
    },
}
SWF_TASK: dict[str, Any] = {
    "taskToken": "token-1",
    "activityId": "a-1",
    "startedEventId": 5,
    "activityType": {"name": "charge", "version": "1"},
    "workflowExecution": {"workflowId": "w-1", "runId": "r-1"},
    "input": "{}",
}

# Per connection method: the wire operation and a valid answer.
DP_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "poll": ("PollForTask", {"taskObject": VALID_TASK}),
    "acknowledge": ("ReportTaskProgress", {"canceled": False}),
    "report_progress": ("ReportTaskProgress", {"canceled": True}),
    "finish": ("SetTaskStatus", {}),
    "heartbeat": ("ReportTaskRunnerHeartbeat", {"terminate": True}),
    "evaluate": ("EvaluateExpression", {"evaluatedExpression": "s3://bucket/2026"}),
}
SWF_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "poll": ("PollForActivityTask", SWF_TASK),
    "report_progress": ("RecordActivityTaskHeartbeat", {"cancelRequested": True}),
    "finish": ("RespondActivityTaskCompleted", {}),
}
# Always answered well, so the hostile answer lands on the call under test.
SWF_DESCRIBE = {"configuration": {"defaultTaskHeartbeatTimeout": "30"}}


@dataclass
class Answer:
    """One HTTP answer as the hostile server sends it."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str | None = JSON11
    delivery: str = "plain"  # plain | chunked | slow | cut | endless
    sent: int = 0  # the most bytes written into one answer, for "endless"

    def __repr__(self) -> str:  # hypothesis prints it: never the whole multi-MB body
        return (
            f"Answer(HTTP {self.status}, {self.delivery}, {self.content_type}, "
            f"{len(self.body)} bytes: {self.body[:60]!r})"
        )


def json_answer(document: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(document).encode())


@dataclass
class HostileService:
    """An aiohttp app answering every call from a script: per operation, a queue of answers;
    once a queue is empty, *default* (per operation) answers."""

    script: dict[str, list[Answer]] = field(default_factory=dict)
    default: dict[str, Callable[[], Answer]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        raw = await request.read()
        self.calls.append((operation, json.loads(raw) if raw else {}))
        queue = self.script.get(operation)
        if queue:
            answer = queue.pop(0)
        elif operation in self.default:
            answer = self.default[operation]()
        else:
            answer = Answer(500, b"", None)
        if operation in ("PollForTask", "PollForActivityTask") and not queue:
            await asyncio.sleep(0.01)  # an empty hold, kept short
        return await send(request, answer)

    def called(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


async def send(request: web.Request, answer: Answer) -> web.StreamResponse:
    """Write *answer* the way its delivery says."""
    headers = {"Content-Type": answer.content_type} if answer.content_type else {}
    if answer.delivery == "plain":
        response = web.Response(status=answer.status, body=answer.body, headers=headers)
        if answer.content_type is None:
            response.headers.popall("Content-Type", None)
        return response
    stream = web.StreamResponse(status=answer.status, headers=headers)
    if answer.delivery == "cut":
        stream.content_length = len(answer.body) + 100
    else:
        stream.enable_chunked_encoding()
    await stream.prepare(request)
    try:
        if answer.delivery == "endless":
            chunk = b"x" * (1 << 20)
            sent = 0  # per answer: a retried poll gets an endless answer of its own
            while sent < 4 * MAX_POLL_ANSWER_BYTES:  # a safety net, never reached
                await stream.write(chunk)
                sent += len(chunk)
                answer.sent = max(answer.sent, sent)
        else:
            pieces = [answer.body[i : i + 7] for i in range(0, len(answer.body), 7)][:50]
            pieces.append(answer.body[len(pieces) * 7 :])
            for piece in pieces:
                await stream.write(piece)
                if answer.delivery == "slow":
                    await asyncio.sleep(0.002)
            if answer.delivery == "cut":
                assert request.transport is not None
                request.transport.close()
                return stream
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the runner hung up: what an over-long answer should make it do
    return stream


@contextlib.asynccontextmanager
async def serving(service: HostileService) -> AsyncIterator[HostileService]:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", service.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    service.url = f"http://{host}:{port}"
    try:
        yield service
    finally:
        await runner.cleanup()


# -- hypothesis: what the service may answer --------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """*valid* with one member deleted or replaced by any JSON value (a list, a number, null)."""
    document = json.loads(json.dumps(valid))
    paths = list(_paths(document))
    if not paths:
        return draw(json_values)
    path = draw(st.sampled_from(paths))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return document


@st.composite
def answers(draw: st.DrawFn, valid: dict[str, Any]) -> Answer:
    """Any answer a broken service, proxy or network could give for a call whose good answer
    is *valid*."""
    kind = draw(
        st.sampled_from(
            ["valid", "mutated", "any json", "truncated", "html", "empty", "bytes", "big", "typed"]
        )
    )
    status = draw(st.sampled_from([200, 200, 200, 400, 403, 404, 429, 500, 502, 503]))
    content_type = draw(
        st.sampled_from([JSON11, "application/json", "text/html", "text/plain", None])
    )
    delivery = draw(st.sampled_from(["plain", "plain", "chunked", "slow", "cut"]))
    text = json.dumps(valid).encode()
    if kind == "valid":
        body = text
    elif kind == "mutated":
        body = json.dumps(draw(mutated(valid))).encode()
    elif kind == "any json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "truncated":
        body = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif kind == "html":
        body = HTML_PAGE
    elif kind == "empty":
        body = b""
    elif kind == "bytes":
        body = draw(st.binary(max_size=64))
    elif kind == "big":  # a few MB: junk, or the valid answer padded past the report cap
        size = draw(st.integers(1, 3)) << 20
        body = (
            b"x" * size if draw(st.booleans()) else text[:-1] + b', "pad": "' + b"p" * size + b'"}'
        )
    else:  # an error's __type, on any status
        code = draw(
            st.sampled_from(
                ["InternalServiceError", "TaskNotFoundException", "ThrottlingException", "Odd"]
            )
        )
        body = json.dumps({**valid, "__type": f"com.amazon.datapipeline#{code}"}).encode()
    return Answer(status, body, content_type, delivery)


# -- the connections, driven directly -----------------------------------------------------------

RECEIVED = ReceivedAttempt(
    id="task-1", queue="wg", pipeline_id="df-1", attempt_id="@A_1_Attempt=1", objects={}
)


async def invoke(connection: Connection, method: str) -> Any:
    if method == "poll":
        return await connection.poll("wg")
    if method == "acknowledge":
        return await connection.acknowledge(RECEIVED)
    if method == "report_progress":
        return await connection.report_progress(RECEIVED, {"rows": "1", "out": Ref("Out")})
    if method == "finish":
        return await connection.finish(RECEIVED, Outcome.finished())
    if method == "heartbeat":
        return await connection.heartbeat("wg")
    return await connection.evaluate(RECEIVED, "#{node.directoryPath}")


def assert_well_typed(method: str, result: Any) -> None:
    if method == "poll":
        if result is None:
            return
        assert isinstance(result, ReceivedTask)
        assert isinstance(result.id, str)
        assert result.id
        assert result.type is None or isinstance(result.type, str)
        if not isinstance(result, ReceivedAttempt):
            return  # SWF: the rest is in attributes, read by ActivityTask's properties
        assert isinstance(result.pipeline_id, str)
        assert isinstance(result.attempt_id, str)
        for fields in result.objects.values():
            for value in fields.values():
                for item in value if isinstance(value, list) else [value]:
                    assert isinstance(item, str | Ref)
                    assert not isinstance(item, Ref) or isinstance(item.id, str)
    elif method == "finish":
        assert result is None
    elif method == "evaluate":
        assert isinstance(result, str)
    else:
        assert isinstance(result, bool)


class Harness:
    """A loop of its own, the hostile server and open connections, kept for all examples."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.service = HostileService()
        self.stack = contextlib.AsyncExitStack()
        self.connections: dict[str, Connection] = {}
        self.outcomes: Counter[str] = Counter()

    async def open(self) -> None:
        await self.stack.enter_async_context(serving(self.service))
        settings = ConnectionSettings(
            region="us-east-1",
            endpoint_url=self.service.url,
            taskrunner_id="runner-1",
            hostname="host-1",
            queues=["wg"],
            max_concurrency=2,
        )
        for name, service in {
            "lean": DataPipeline(transport="lean"),
            "aiobotocore": DataPipeline(transport="aiobotocore"),
            "swf": SWF(domain="orders"),
        }.items():
            self.connections[name] = await self.stack.enter_async_context(service.connect(settings))

    def exercise(self, name: str, method: str, answer: Answer) -> None:
        """Send *method* on connection *name*, answered with *answer*; check what came back."""
        calls = SWF_CALLS if name == "swf" else DP_CALLS
        operation, valid = calls[method]
        self.service.script = {operation: [answer]}
        self.service.default = {"DescribeActivityType": lambda: json_answer(SWF_DESCRIBE)}
        # Anything but a PipeworkerError escaping (KeyError, TypeError, JSONDecodeError, ...)
        # fails the test here.
        error: PipeworkerError | None = None
        try:
            result = self.runner.run(invoke(self.connections[name], method))
        except PipeworkerError as exc:
            error = exc
        if error is not None:
            exc = error
            self.outcomes[type(exc).__name__] += 1
            assert (
                answer.body != json.dumps(valid).encode()
                or answer.status != 200
                or (answer.delivery == "cut")
            ), f"{name}.{method}: a valid answer raised {exc!r}"
            undeclared = not answer.body.lstrip().startswith(b"{") or b"__type" not in answer.body
            # Over the report cap, an error answer is not read: retried, whatever its status.
            readable = answer.delivery != "cut" and len(answer.body) <= MAX_REPORT_ANSWER_BYTES
            if readable and undeclared and answer.status >= 500:
                assert isinstance(exc, TransientServiceError), f"{answer!r}: {exc!r}"
            if readable and undeclared and answer.status in (400, 403, 404):
                # botocore cannot tell the status of an error body it cannot decode.
                botocore = name != "lean" or method == "evaluate"
                unparsed = botocore and getattr(exc, "code", "") == "MalformedResponse"
                assert isinstance(exc, RequestRejected) or unparsed, f"{answer!r}: {exc!r}"
            return
        self.outcomes["answered"] += 1
        assert_well_typed(method, result)
        if answer.body == json.dumps(valid).encode() and answer.status == 200:
            expected = {"acknowledge": False, "report_progress": True, "heartbeat": True}
            if method in expected:
                assert result is expected[method]
            if method == "poll":
                assert result is not None
                assert result.id in ("task-1", "token-1")

    def close(self) -> None:
        try:
            self.runner.run(self.stack.aclose())
        finally:
            self.runner.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with pytest.MonkeyPatch.context() as env:
        fake_aws_environment(env, access_key=FAKE_ACCESS_KEY, secret_key=FAKE_SECRET_KEY)
        built = Harness()
        try:
            built.runner.run(built.open())
            yield built
        finally:
            built.close()
    report(
        "hostile answers: connection outcomes "
        + ", ".join(f"{name} {count}" for name, count in sorted(built.outcomes.items()))
    )


HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("transport", ["lean", "aiobotocore"])
@HOSTILE
@given(data=st.data())
def test_data_pipeline_calls_answer_typed_values_or_pipeworker_errors(
    harness: Harness, transport: str, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(list(DP_CALLS)), label="method")
    answer = data.draw(answers(DP_CALLS[method][1]), label="answer")
    harness.exercise(transport, method, answer)


@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_swf_calls_answer_typed_values_or_pipeworker_errors(
    harness: Harness, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(list(SWF_CALLS)), label="method")
    answer = data.draw(answers(SWF_CALLS[method][1]), label="answer")
    harness.exercise("swf", method, answer)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (Answer(200, b'{"taskObject": {"taskId": "t", "objects": [1]}}'), "MalformedResponse"),
        (Answer(200, b'{"taskObject": "t"}'), "MalformedResponse"),
        (Answer(200, b'{"taskObj'), "MalformedResponse"),
        (Answer(200, HTML_PAGE, "text/html"), "MalformedResponse"),
        (Answer(200, b"[]"), "MalformedResponse"),
        (Answer(200, b'{"__type": "x#InternalServiceError"}'), "InternalServiceError"),
        (Answer(502, HTML_PAGE, "text/html"), "502"),
        (Answer(503, HTML_PAGE, JSON11), "503"),
        (Answer(200, b"", None, "endless"), "ResponseTooLarge"),
        (Answer(200, b"{" + b" " * (MAX_POLL_ANSWER_BYTES + 1) + b"}"), "ResponseTooLarge"),
    ],
    ids=[
        "objects-list",
        "task-str",
        "truncated",
        "html-200",
        "array",
        "typed-200",
        "html-502",
        "html-503-json",
        "endless",
        "over-cap",
    ],
)
def test_a_lean_poll_retries_what_it_cannot_read_and_never_buffers_past_the_cap(
    harness: Harness, answer: Answer, code: str
) -> None:
    harness.service.script = {"PollForTask": [answer]}
    with pytest.raises(TransientServiceError) as raised:
        harness.runner.run(harness.connections["lean"].poll("wg"))
    assert raised.value.code == code
    if answer.delivery == "endless":
        # Socket buffers let the server write ahead of the reader, but not without bound.
        assert answer.sent < 2 * MAX_POLL_ANSWER_BYTES


# -- a whole worker through garbage -------------------------------------------------------------


def bad_tasks() -> list[Answer]:
    """Poll answers for tasks that cannot be read; the first two name their task."""
    fields_without_key = json.loads(json.dumps(VALID_TASK))
    fields_without_key["taskId"] = "bad-1"
    fields_without_key["objects"]["@A_1"]["fields"][0] = {"stringValue": "no key"}
    number_value = json.loads(json.dumps(VALID_TASK))
    number_value["taskId"] = "bad-2"
    number_value["objects"]["@A_1"]["fields"][1]["stringValue"] = 42
    return [
        json_answer({"taskObject": fields_without_key}),
        json_answer({"taskObject": number_value}),
        json_answer({"taskObject": [VALID_TASK]}),
        Answer(200, b'{"taskObject": {"taskId": "bad-3", "obj'),
        Answer(502, HTML_PAGE, "text/html"),
        Answer(503, HTML_PAGE, JSON11),
        Answer(200, b""),
        Answer(400, b"Bad Request", "text/plain"),
    ]


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("transport", ["lean", "aiobotocore"])
async def test_a_worker_survives_garbage_leaves_unreadable_tasks_to_the_lease_and_finishes_the_next(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.loads(json.dumps(VALID_TASK))
    good["taskId"] = "good-1"
    service = HostileService(
        script={
            "PollForTask": [*bad_tasks(), json_answer({"taskObject": good})],
            "ReportTaskProgress": [
                Answer(200, HTML_PAGE, "text/html"),
                json_answer({"canceled": "no"}),
                json_answer({"canceled": False}),
            ],
            "SetTaskStatus": status_garbage(transport),
            "ReportTaskRunnerHeartbeat": [
                json_answer({"terminate": None}),
                json_answer({"terminate": "yes"}),
                Answer(200, b"<html>", "text/html"),
            ],
        },
        default={
            "PollForTask": lambda: json_answer({}),
            "ReportTaskProgress": lambda: json_answer({"canceled": False}),
            "SetTaskStatus": lambda: json_answer({}),
            "ReportTaskRunnerHeartbeat": lambda: json_answer({"terminate": False}),
        },
    )
    ran: list[str] = []
    async with serving(service):
        worker = Worker(
            service=DataPipeline(transport=transport),  # type: ignore[arg-type]
            endpoint_url=service.url,
            region="us-east-1",
            progress_interval=0.2,
            heartbeat_interval=0.1,
            shutdown_grace=1.0,
            max_concurrency=1,
        )

        @worker.activity("wg")
        async def handle(task: Task) -> None:
            ran.append(task.id)
            await asyncio.sleep(0.3)  # long enough for a progress report

        with caplog.at_level(logging.WARNING):
            async with worker:
                await eventually(lambda: finished(service))
                polls = len(service.called("PollForTask"))
                beats = len(service.called("ReportTaskRunnerHeartbeat"))
                await eventually(
                    lambda: (
                        len(service.called("PollForTask")) > polls + 3
                        and len(service.called("ReportTaskRunnerHeartbeat")) > beats + 1
                    )
                )
                assert worker._serving is not None
                assert not worker._serving.done()  # still serving after all that

    assert ran == ["good-1"]  # the unreadable tasks never reached a handler
    statuses = service.called("SetTaskStatus")
    assert {params["taskId"] for params in statuses} == {"good-1"}
    assert statuses[-1]["taskStatus"] == "FINISHED"
    assert len(statuses) == len(status_garbage(transport)) + 1  # retried until it landed
    # Left to the lease: nothing was sent for a task that could not be read.
    reported = {params["taskId"] for params in service.called("ReportTaskProgress")}
    assert reported == {"good-1"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for task_id in ("bad-1", "bad-2"):
        assert any(task_id in line and "no status is sent" in line for line in errors), errors
    report(
        f"hostile answers ({transport} worker): {len(bad_tasks())} unreadable poll answers, "
        f"{len(service.called('PollForTask'))} polls, {len(statuses)} SetTaskStatus attempts "
        f"until FINISHED landed; no status or progress for an unreadable task"
    )


def status_garbage(transport: str) -> list[Answer]:
    """SetTaskStatus answers that must not count as landed."""
    answers = [
        Answer(503, b""),
        Answer(502, HTML_PAGE, "text/html"),
        Answer(200, b"{}", JSON11, "cut"),
    ]
    if transport == "lean":
        # botocore reads any 2xx as success (a body it cannot parse becomes a message); the
        # lean transport wants a JSON object without __type before it believes a status landed.
        answers += [
            Answer(200, b'{"'),
            json_answer({"__type": "x#InternalServiceError", "message": "boom"}),
            Answer(200, HTML_PAGE, "text/html"),
        ]
    return answers


def finished(service: HostileService) -> bool:
    statuses = service.called("SetTaskStatus")
    landed = not service.script["SetTaskStatus"]  # every garbage answer was taken
    return landed and bool(statuses) and statuses[-1].get("taskStatus") == "FINISHED"


def test_lease_lost_and_throttling_codes_keep_their_meaning_on_a_200(harness: Harness) -> None:
    # An error with the wrong status is still an error: SetTaskStatus must not be taken as landed.
    for code, kind in [
        ("TaskNotFoundException", LeaseLost),
        ("ThrottlingException", ThrottlingError),
    ]:
        harness.service.script = {
            "SetTaskStatus": [json_answer({"__type": f"com.amazon.datapipeline#{code}"})]
        }
        with pytest.raises(kind):
            harness.runner.run(harness.connections["lean"].finish(RECEIVED, Outcome.finished()))
