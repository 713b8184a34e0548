"""The service half every AWS polling service shares: its settings and how it connects.

A service module names its :class:`~pipeworker.services._description.ServiceDescription` and
its :class:`~pipeworker.services._aws.Wire`, and says how a connection is made from the senders;
the name, queue noun, lease, poll-stop policy and rate limits the worker reads come from the
description, the poll read timeout is checked against its hold, and the clients are opened and
closed here, the same way for every service.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from pipeworker.exceptions import ConfigurationError
from pipeworker.services._aws import (
    Sender,
    Transport,
    TransportSwitch,
    Wire,
    check_transport,
    open_senders,
)
from pipeworker.services._description import ServiceDescription
from pipeworker.services.base import Connection, ConnectionSettings, Service, TaskT

__all__ = ["AwsService"]


class AwsService(TransportSwitch, Service[TaskT]):
    """An AWS polling service reached through :func:`~pipeworker.services._aws.open_senders`.

    Subclasses set :attr:`description` and :attr:`wire` and implement :meth:`open_connection`;
    a class attribute of their own (Step Functions' regional ``rate_limits``) wins over the
    description's.

    Args:
        poll_read_timeout: the poll client's read timeout; by default the description's, and
            never at or below the service's hold.
        report_pool_size: connections for the calls about tasks; by default
            ``max_concurrency`` capped to 10..100.
        transport: ``"lean"`` or ``"aiobotocore"``.

    Raises:
        ConfigurationError: the transport is unknown, or the read timeout does not outlast
            the hold.
    """

    description: ClassVar[ServiceDescription]
    wire: ClassVar[Wire]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        description = cls.__dict__.get("description")
        if description is None:
            return
        derived = {
            "name": description.name,
            "queue_name": description.queue_name,
            "lease_seconds": description.lease_seconds,
            "ack_window": description.ack_window,
            "poll_stop": description.poll_stop,
            "rate_limits": description.pacing(),
        }
        for attribute, value in derived.items():
            if attribute not in cls.__dict__:
                setattr(cls, attribute, value)

    def __init__(
        self,
        *,
        poll_read_timeout: float | None = None,
        report_pool_size: int | None = None,
        transport: Transport = "lean",
    ) -> None:
        self.transport = check_transport(transport)
        if poll_read_timeout is None:
            poll_read_timeout = self.description.poll_read_timeout
        problem = self.description.poll_read_timeout_problem(poll_read_timeout)
        if problem is not None:
            raise ConfigurationError(problem)
        self.poll_read_timeout = poll_read_timeout
        self.report_pool_size = report_pool_size

    def poll_pool(self, settings: ConnectionSettings) -> int | None:
        """Connections for polls; None: one per slot and per queue."""
        return None

    @abc.abstractmethod
    async def open_connection(
        self, senders: Mapping[str, Sender], settings: ConnectionSettings
    ) -> Connection:
        """The service's connection over *senders* (which stay open while it is used)."""

    @asynccontextmanager
    async def connect(self, settings: ConnectionSettings) -> AsyncIterator[Connection]:
        """Create the poll and report clients; closing the context closes both."""
        async with open_senders(
            self.wire,
            settings,
            transport=self.transport,
            poll_read_timeout=self.poll_read_timeout,
            report_pool_size=self.report_pool_size,
            poll_pool=self.poll_pool(settings),
        ) as senders:
            yield await self.open_connection(senders, settings)
