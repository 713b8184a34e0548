"""Preconditions: what an activity waits for before it runs.

A precondition a task runner checks (``ShellCommandPrecondition``, ``Exists``,
``DynamoDBDataExists``, ``DynamoDBTableExists``) is handed to a runner as a task, on its own
``runsOn``/``workerGroup`` or else on the group of the activity that needs it. The runner answers
FINISHED (met), FALSE (not met yet) or FAILED. FALSE is no failed try: the check is offered again
after the precondition's ``retryDelay`` until ``preconditionTimeout`` has passed since the first
check; then the precondition is FAILED and what waits for it CASCADE_FAILED.

``S3KeyExists`` (``s3Key``) and ``S3PrefixNotEmpty`` (``s3Prefix``) the service checks itself,
against the S3 endpoint the standard settings name: ``AWS_ENDPOINT_URL_S3``, else
``AWS_ENDPOINT_URL`` (moto, LocalStack, MinIO), with the credentials of the service's environment.
When neither is set, nothing is asked of real S3 from a laptop tool: the precondition is taken as
met, and its instance says so in a ``@localNote`` field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from pipeworker.local._evaluation import period_seconds
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._state import TERMINAL, Instance

__all__ = ["NO_ENDPOINT_NOTE", "PreconditionChecks", "s3_endpoint"]

log = logging.getLogger("pipeworker.local")

NO_ENDPOINT_NOTE = (
    "no S3 endpoint is configured (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL): "
    "the precondition was taken as met"
)
DEFAULT_RETRY_DELAY = 600.0


def s3_endpoint() -> str | None:
    """The S3 endpoint the standard settings name, or None."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _split(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    rest = url.strip().removeprefix("s3://").removeprefix("s3n://")
    bucket, _, key = rest.partition("/")
    return bucket, key


class PreconditionChecks:
    """Deadlines of runner-checked preconditions, and the checks of the S3 ones."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._deadlines: dict[str, float] = {}
        self._running: set[asyncio.Task[None]] = set()

    def _seconds(self, instance: Instance, key: str, default: float | None) -> float | None:
        text = instance.fields.get(key, [None])[0]
        if isinstance(text, str):
            with contextlib.suppress(ValueError):
                return period_seconds(text, self.scheduler.config.time_scale)
        return None if default is None else default * self.scheduler.config.time_scale

    def _expired(self, instance: Instance) -> bool:
        loop = asyncio.get_running_loop()
        if instance.id not in self._deadlines:
            timeout = self._seconds(instance, "preconditionTimeout", None)
            self._deadlines[instance.id] = loop.time() + timeout if timeout is not None else 0.0
        deadline = self._deadlines[instance.id]
        return bool(deadline) and loop.time() >= deadline

    def not_met(self, instance: Instance) -> None:
        """A check said FALSE: check again later, or fail once preconditionTimeout has passed."""
        if self._expired(instance):
            self._deadlines.pop(instance.id, None)
            instance.set("errorMessage", "The precondition was not met within preconditionTimeout")
            self.scheduler.finish(instance, "FAILED")
            return
        delay = self._seconds(instance, "retryDelay", DEFAULT_RETRY_DELAY)
        self.scheduler.retry_later(instance, delay or 0.0)

    def check_s3(self, instance: Instance) -> None:
        """Check an S3 precondition against the configured endpoint (in the background)."""
        if instance.status in TERMINAL:
            return
        self._expired(instance)  # starts the preconditionTimeout clock at the first check
        endpoint = s3_endpoint()
        if endpoint is None:
            instance.set("@localNote", NO_ENDPOINT_NOTE)
            self._met(instance)
            return
        instance.set_status("RUNNING")
        task = asyncio.get_running_loop().create_task(self._check(instance, endpoint))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _met(self, instance: Instance) -> None:
        self._deadlines.pop(instance.id, None)
        self.scheduler.finish(instance, "FINISHED")

    async def _check(self, instance: Instance, endpoint: str) -> None:
        kind = instance.fields.get("type", [""])[0]
        field = "s3Key" if kind == "S3KeyExists" else "s3Prefix"
        target = instance.fields.get(field, [""])[0]
        try:
            met = await _exists(endpoint, str(target), prefix=field == "s3Prefix")
        except Exception as exc:
            # Whatever keeps S3 from answering (no bucket, refused connection, bad URL) is
            # "not met yet" until preconditionTimeout, with the reason on the instance.
            instance.set("errorMessage", f"{field} {target!r}: {exc}")
            met = False
        if instance.status in TERMINAL:
            return
        if met:
            instance.set("errorMessage", None)
            self._met(instance)
        else:
            self.not_met(instance)

    def forget(self, instance: Instance) -> None:
        """*instance* ended: its deadline is no longer needed."""
        self._deadlines.pop(instance.id, None)

    def close(self) -> None:
        """The service stops: abandon checks in flight."""
        for task in self._running:
            task.cancel()
        self._running.clear()


async def _exists(endpoint: str, url: str, *, prefix: bool) -> bool:
    from aiobotocore.session import get_session
    from botocore.exceptions import ClientError

    bucket, key = _split(url)
    if not bucket:
        raise ValueError("not an s3://bucket/key URL")
    session = get_session()
    client_context: Any = session.create_client(
        "s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    )
    async with client_context as s3:
        if prefix:
            listed = await s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            return bool(listed.get("KeyCount", 0))
        try:
            await s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
