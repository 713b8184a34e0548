"""What the AWS services share: the two call profiles, both transports, one error table.

Data Pipeline and SWF differ in their operations, shapes and the codes that mean a lease is
lost; everything else is the same and lives here:

- *startup*: credentials must exist before anything is sent, a missing region is a
  :class:`~pipeworker.exceptions.ConfigurationError`, and signed headers are redacted from
  botocore's DEBUG logs;
- *two call profiles*, so long polls can never starve the calls that keep leases: ``poll`` (read
  timeout above the service's hold, a connection for every poll that can be in flight) and
  ``report`` (30 s read timeout, its own pool); botocore's retries are off on both, the one retry
  layer being ``pipeworker._retry``;
- *two transports*: ``"lean"`` sends a service's hot operations through
  :class:`~pipeworker.services._signed.SignedTransport` (botocore's SigV4 signer over bare
  aiohttp, each profile with its own session and answer cap) and the rest through an aiobotocore
  client; ``"aiobotocore"`` sends everything through aiobotocore clients, one per profile; or a
  *transport object* (:class:`SendTransport`, such as ``pipeworker.testing.MockTransport``)
  sends every operation, with no credentials, botocore client or network involved;
- *one seam*: :meth:`AwsConnection.call` sends each request and reads its answer, and
  :func:`map_error` translates what either transport raised, parametrized by the service's own
  :class:`ErrorRules`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Final, Literal, Protocol, Self, TypeAlias, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import xform_name
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from pipeworker import _redact
from pipeworker.exceptions import (
    ConfigurationError,
    LeaseLost,
    PipeworkerError,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
    ValidationError,
)
from pipeworker.services._answers import kind, read_object
from pipeworker.services._description import ErrorRules, ServiceDescription
from pipeworker.services._signed import ErrorAnswer, Profile, SignedTransport
from pipeworker.services.base import Connection, ConnectionSettings, MalformedAnswer

__all__ = [
    "TRANSPORTS",
    "AwsConnection",
    "ErrorRules",
    "SendTransport",
    "Sender",
    "Transport",
    "TransportName",
    "Wire",
    "check_transport",
    "kind",
    "map_error",
    "open_senders",
    "read_object",
    "report_pool",
]

_T = TypeVar("_T")

Sender = Callable[[Mapping[str, Any]], Awaitable[Any]]
"""Sends one operation's parameters and returns the decoded answer."""


class SendTransport(Protocol):
    """A transport object: sends every operation of a service in place of AWS.

    :meth:`send` returns the decoded answer (a dict, as the JSON protocols answer) or raises
    what a real transport raises: an :class:`~pipeworker.services._signed.ErrorAnswer` for an
    error answer, ``aiohttp.ClientError`` or ``TimeoutError`` for a request without an answer,
    :class:`~pipeworker.services.base.MalformedAnswer` for one that cannot be read. The service's
    own readers and error table then treat it exactly as an answer from AWS.
    """

    async def send(self, operation: str, params: Mapping[str, Any]) -> Any: ...


TransportName = Literal["lean", "aiobotocore"]
Transport: TypeAlias = TransportName | SendTransport
"""What a service's ``transport=`` takes: a transport's name, or a transport object."""
TRANSPORTS: Final = ("lean", "aiobotocore")

REPORT_READ_TIMEOUT = 30.0
MAX_REPORT_ANSWER_BYTES = 1 << 20
"""The lean transport's cap on an answer other than a poll's (progress, status, heartbeat: a
few bytes when all is well; 1 MiB also leaves room for any error page worth reading)."""
CONNECT_TIMEOUT = 10.0

# What AWS answers a request it cannot authenticate: never worth sending again as it is.
_AUTHENTICATION_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
    }
)
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",  # SWF: too many pollers on a task list, or a rate
        "SlowDown",
    }
)
# Server-side faults, whatever status they came with (Data Pipeline's, then AWS's generic ones).
_SERVER_CODES = frozenset(
    {"InternalServiceError", "InternalFailure", "InternalError", "ServiceUnavailable"}
)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, proxy errors
    ConnectionClosedError,
    HTTPClientError,  # ReadTimeoutError and other transport failures
    aiohttp.ClientError,
    TimeoutError,
)


def check_transport(transport: object) -> Transport:
    """*transport* if it names a transport or is a transport object (it has an async ``send``);
    else a ConfigurationError saying what is accepted."""
    if isinstance(transport, str) and transport in TRANSPORTS:
        return transport  # type: ignore[return-value]  # one of TRANSPORTS
    if not isinstance(transport, str) and inspect.iscoroutinefunction(
        getattr(transport, "send", None)
    ):
        return transport  # type: ignore[return-value]  # has the protocol's method
    raise ConfigurationError(
        f"transport={transport!r}: use one of {', '.join(map(repr, TRANSPORTS))}, or a "
        "transport object with an async send(operation, params) such as "
        "pipeworker.testing.MockTransport"
    )


class TransportSwitch:
    """For services with a lean and an aiobotocore transport (or a transport object):
    ``with_transport()``, once."""

    transport: Transport

    def with_transport(self, transport: Transport) -> Self:
        """A copy of this service sending its hot calls with *transport*."""
        clone = copy.copy(self)
        clone.transport = check_transport(transport)
        return clone


def report_pool(configured: int | None, settings: ConnectionSettings) -> int:
    """Connections for the report profile: *configured*, or ``max_concurrency`` in 10..100."""
    return configured or min(max(settings.max_concurrency, 10), 100)


# -- errors ----------------------------------------------------------------------------------


def map_error(operation: str, exc: Exception, rules: ErrorRules) -> PipeworkerError:
    """Translate what either transport raised for *operation* into the exception tree.

    Most specific first: lost leases, authentication, throttling, server errors, other request
    errors, then unreadable answers, transport failures and local configuration problems.
    botocore's ``ClientError`` and the lean transport's ``ErrorAnswer`` carry the same code,
    message and status, mapped by one table.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return _map_answer(operation, code, str(error.get("Message") or exc), status, rules)
    if isinstance(exc, ErrorAnswer):
        return _map_answer(operation, exc.code, exc.message or str(exc.status), exc.status, rules)
    if isinstance(exc, MalformedAnswer):
        return TransientServiceError(
            f"{operation}: {exc.code}: {exc}", operation=operation, code=exc.code
        )
    if isinstance(exc, ResponseParserError) or (
        isinstance(exc, AttributeError | TypeError | KeyError | ValueError)
        and _raised_by_parser(exc)
    ):
        # botocore's parser met a member of the wrong type (a list where an object belongs).
        code = "MalformedResponse"
        return TransientServiceError(
            f"{operation}: {code}: {type(exc).__name__}: {exc}", operation=operation, code=code
        )
    if isinstance(exc, _TRANSIENT_ERRORS):
        name = type(exc).__name__
        return TransientServiceError(f"{operation}: {name}: {exc}", operation=operation, code=name)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return ConfigurationError(f"{operation}: {exc}")
    if isinstance(exc, ParamValidationError):
        return ValidationError(f"{operation}: {exc}")
    name = type(exc).__name__
    return RequestRejected(f"{operation}: {name}: {exc}", operation=operation, code=name)


def _raised_by_parser(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__") == "botocore.parsers":
            return True
        traceback = traceback.tb_next
    return False


def _map_answer(
    operation: str, code: str, text: str, status: int, rules: ErrorRules
) -> PipeworkerError:
    message = f"{operation}: {code}: {text}"
    if code in rules.lease_lost and operation in rules.lease_operations:
        return LeaseLost(message, operation=operation, code=code)
    if code in _AUTHENTICATION_CODES:
        return RequestRejected(
            f"{message} (the service did not accept this runner's credentials: check "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile or role, and the clock)",
            operation=operation,
            code=code,
        )
    if code in _THROTTLING_CODES or code in rules.throttling or status == 429:
        return ThrottlingError(message, operation=operation, code=code)
    if code in _SERVER_CODES or status >= 500:
        return TransientServiceError(message, operation=operation, code=code or str(status))
    return RequestRejected(message, operation=operation, code=code or str(status))


# -- the clients -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wire:
    """How a service is reached, for :func:`open_senders`.

    Attributes:
        description: the service's names, prefix, JSON version and long poll (and everything
            else both the worker and the local service read).
        lean: the operations the lean transport sends.
        slow: the operations always sent through aiobotocore (rare ones: once at start, or
            seldom enough that botocore's CPU does not matter).
        max_poll_answer_bytes: the lean transport's cap on a poll's answer.
        max_report_answer_bytes: its cap on any other answer.
    """

    description: ServiceDescription
    lean: frozenset[str]
    slow: frozenset[str]
    max_poll_answer_bytes: int
    max_report_answer_bytes: int = MAX_REPORT_ANSWER_BYTES

    @property
    def operations(self) -> dict[str, tuple[str, str]]:
        """Every operation sent, as its aiobotocore method and profile: the long poll on
        ``"poll"``, the rest on ``"report"``."""
        poll = self.description.poll_operation
        return {
            operation: (xform_name(operation), "poll" if operation == poll else "report")
            for operation in sorted(self.lean | self.slow)
        }

    @property
    def max_answer_bytes(self) -> dict[str, int]:
        """The lean transport's answer cap, per profile."""
        return {"poll": self.max_poll_answer_bytes, "report": self.max_report_answer_bytes}

    @property
    def signing_name(self) -> str:
        """The SigV4 signing name (``"swf"``, ``"states"``)."""
        return self.description.signing_name

    @property
    def client_name(self) -> str:
        """botocore's service name (``"stepfunctions"``, signed as ``"states"``)."""
        return self.description.name

    @property
    def target_prefix(self) -> str:
        """The ``X-Amz-Target`` prefix (``"SimpleWorkflowService"``)."""
        return self.description.target_prefix

    @property
    def content_type(self) -> str:
        """``application/x-amz-json-1.0`` or ``-1.1``."""
        return self.description.content_type


def _profile_not_found(exc: ProfileNotFound) -> ConfigurationError:
    profile = exc.kwargs.get("profile", "?")
    return ConfigurationError(
        f"the AWS profile {profile!r} (AWS_PROFILE) is not in the AWS config or credentials "
        "file: fix AWS_PROFILE, unset it, or add the profile (aws configure --profile NAME)"
    )


@asynccontextmanager
async def open_senders(
    wire: Wire,
    settings: ConnectionSettings,
    *,
    transport: Transport,
    poll_read_timeout: float,
    report_pool_size: int | None,
    poll_pool: int | None = None,
) -> AsyncIterator[dict[str, Sender]]:
    """Open the clients (and the lean transport) of *wire*; yield a sender per operation.

    Polls never outnumber free slots, so *poll_pool* defaults to one connection per slot and per
    queue; the report pool is sized by :func:`report_pool`.

    A transport object sends every operation itself: no credentials are read and no client is
    created, so nothing can reach AWS.

    Raises:
        ConfigurationError: no credentials, or no region.
    """
    if not isinstance(transport, str):
        yield {operation: partial(transport.send, operation) for operation in wire.operations}
        return
    _redact.install()  # botocore logs signed headers at DEBUG
    session: Any = get_session()  # create_client is typed per literal service name
    try:
        credentials = await session.get_credentials()
    except ProfileNotFound as exc:
        raise _profile_not_found(exc) from None
    if credentials is None:
        raise ConfigurationError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where an instance role is available"
        )
    no_retries = {"total_max_attempts": 1, "mode": "standard"}
    profiles = {
        "poll": Profile(
            pool=poll_pool or settings.max_concurrency + len(settings.queues),
            read_timeout=poll_read_timeout,
        ),
        "report": Profile(
            pool=report_pool(report_pool_size, settings), read_timeout=REPORT_READ_TIMEOUT
        ),
    }
    # The report client always exists: region and endpoint are resolved through it.
    needed = {"report"} | {
        profile
        for operation, (_, profile) in wire.operations.items()
        if transport == "aiobotocore" or operation not in wire.lean
    }
    async with AsyncExitStack() as stack:
        clients: dict[str, Any] = {}
        try:
            for name in sorted(needed, reverse=True):  # report first
                config = AioConfig(
                    read_timeout=profiles[name].read_timeout,
                    connect_timeout=CONNECT_TIMEOUT,
                    retries=no_retries,
                    max_pool_connections=profiles[name].pool,
                )
                clients[name] = await stack.enter_async_context(
                    session.create_client(
                        wire.client_name,
                        region_name=settings.region,
                        endpoint_url=settings.endpoint_url,
                        config=config,
                    )
                )
        except NoRegionError as exc:
            raise ConfigurationError(
                "no AWS region: pass region=... or set AWS_DEFAULT_REGION"
            ) from exc
        except ProfileNotFound as exc:
            raise _profile_not_found(exc) from None
        senders: dict[str, Sender] = {}
        for operation, (method, profile) in wire.operations.items():
            if transport == "aiobotocore" or operation not in wire.lean:
                senders[operation] = _keywords(getattr(clients[profile], method))
        if transport == "lean":
            meta = clients["report"].meta
            signed = SignedTransport(
                credentials=credentials,
                region=meta.region_name,
                endpoint_url=meta.endpoint_url,
                signing_name=wire.signing_name,
                target_prefix=wire.target_prefix,
                content_type=wire.content_type,
                profiles={
                    name: Profile(
                        pool=profile.pool,
                        read_timeout=profile.read_timeout,
                        max_answer_bytes=wire.max_answer_bytes[name],
                    )
                    for name, profile in profiles.items()
                },
            )
            stack.push_async_callback(signed.close)
            for operation in wire.lean:
                senders[operation] = partial(signed.call, wire.operations[operation][1], operation)
        yield senders


def _keywords(method: Callable[..., Awaitable[Any]]) -> Sender:
    async def send(params: Mapping[str, Any]) -> Any:
        return await method(**params)

    send.client = method.__self__  # type: ignore[attr-defined]  # for tests of the profiles
    return send


# -- the seam --------------------------------------------------------------------------------


class AwsConnection(Connection):
    """A connection whose every request goes through :meth:`call`.

    Subclasses set :attr:`errors` (their :class:`ErrorRules`) and :attr:`log`.
    """

    errors: ClassVar[ErrorRules]
    log: ClassVar[logging.Logger]

    def __init__(self, senders: Mapping[str, Sender]) -> None:
        # Bound once: the hot path looks a sender up in a dict instead of by attribute name.
        self._senders = dict(senders)

    async def call(
        self,
        operation: str,
        params: Mapping[str, Any],
        read: Callable[[Any], _T] = read_object,  # type: ignore[assignment]
    ) -> _T:
        """Send one request and *read* its answer; the only place either transport's errors,
        and answers of the wrong shape, are translated into the exception tree."""
        try:
            return read(await self._senders[operation](params))
        except asyncio.CancelledError:
            raise
        except MalformedAnswer as exc:
            self.unreadable(operation, exc)
            raise map_error(operation, exc, self.errors) from exc
        except Exception as exc:
            raise map_error(operation, exc, self.errors) from exc

    def unreadable(self, operation: str, exc: MalformedAnswer) -> None:
        """Log an answer that could not be read (it is retried as a transient error)."""
        self.log.warning("%s: unreadable answer: %s", operation, exc)
