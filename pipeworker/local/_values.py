"""Values of pipeline object fields, shared by the local service's modules.

A field holds one or more values; each is a string (``stringValue`` on the wire) or a reference to
another object (``refValue``). Dates travel as
``YYYY-MM-DDTHH:MM:SS`` in UTC, as the service writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DATETIME_FORMAT",
    "Fields",
    "Lookup",
    "Ref",
    "Value",
    "format_datetime",
    "parse_datetime",
]

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another object of the same pipeline, by id."""

    id: str


Value = str | Ref
Fields = Mapping[str, Sequence[Value]]
"""An object's fields: key -> values, in definition order (``dependsOn`` may have several)."""

Lookup = Callable[[str], Fields | None]
"""Finds an object's (inheritance-resolved) fields by id; None when there is no such object."""


def format_datetime(moment: datetime) -> str:
    """Render *moment* the way the service writes dates (UTC, seconds precision, no zone)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime(DATETIME_FORMAT)


def parse_datetime(text: str) -> datetime:
    """Parse a service date (``2026-11-22T00:00:00``, optionally with a ``Z`` or offset) as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
