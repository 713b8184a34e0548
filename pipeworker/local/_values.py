"""Values of pipeline object fields, shared by the local service's modules.

A field holds one or more values; each is a string (``stringValue`` on the wire) or a reference to
another object (``refValue``). Dates travel as
``YYYY-MM-DDTHH:MM:SS`` in UTC, as the service writes them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DATETIME_FORMAT",
    "Fields",
    "Lookup",
    "Ref",
    "Value",
    "format_datetime",
    "format_joda",
    "in_time_zone",
    "parse_datetime",
    "shift_datetime",
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


_JODA_TOKEN = re.compile(r"'((?:[^']|'')*)'?|([A-Za-z])\2*|[^A-Za-z']+")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_joda(moment: datetime, pattern: str) -> str:
    """Render *moment* with a Joda-Time ``DateTimeFormat`` pattern, like Data Pipeline's format().

    Supported letters: ``G C Y y x w e E D M d a K h H k m s S z Z`` with Joda's meaning and
    counts (``yy`` two-digit year, ``MMM``/``MMMM`` month names, ``EEE``/``EEEE`` day names, ``SSS``
    milliseconds, ``z`` short zone name, ``Z`` +0000, ``ZZ`` +00:00, ``ZZZ``/``zzzz`` the zone id);
    text in single quotes is literal and ``''`` is a quote. Names are English. A naive *moment* is
    taken as UTC.

    Raises:
        ValueError: On a letter Joda reserves but this formatter does not know.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    out: list[str] = []
    for found in _JODA_TOKEN.finditer(pattern):
        quoted, letter = found.group(1), found.group(2)
        if quoted is not None:
            out.append(quoted.replace("''", "'") if quoted else "'")
        elif letter is not None:
            out.append(_joda_field(moment, letter, len(found.group())))
        else:
            out.append(found.group())
    return "".join(out)


def _pad(value: int, count: int) -> str:
    text = str(abs(value)).zfill(count)
    return "-" + text if value < 0 else text


def _joda_field(moment: datetime, letter: str, count: int) -> str:
    if letter in "Yyx":
        year = moment.isocalendar()[0] if letter == "x" else moment.year
        return _pad(year % 100, 2) if count == 2 else _pad(year, count)
    if letter == "M":
        if count >= 3:
            name = _MONTHS[moment.month - 1]
            return name if count >= 4 else name[:3]
        return _pad(moment.month, count)
    if letter == "E":
        name = _WEEKDAYS[moment.weekday()]
        return name if count >= 4 else name[:3]
    if letter == "a":
        return "AM" if moment.hour < 12 else "PM"
    if letter == "S":
        digits = f"{moment.microsecond:06d}000"
        return digits[:count] if count <= 9 else digits + "0" * (count - 9)
    if letter in "zZ":
        return _joda_zone(moment, letter, count)
    numbers = {
        "G": None,
        "C": moment.year // 100,
        "w": moment.isocalendar()[1],
        "e": moment.isoweekday(),
        "D": moment.timetuple().tm_yday,
        "d": moment.day,
        "K": moment.hour % 12,
        "h": moment.hour % 12 or 12,
        "H": moment.hour,
        "k": moment.hour or 24,
        "m": moment.minute,
        "s": moment.second,
    }
    if letter not in numbers:
        raise ValueError(f"illegal pattern letter {letter!r} in the format string")
    value = numbers[letter]
    return "AD" if value is None else _pad(value, count)


def _joda_zone(moment: datetime, letter: str, count: int) -> str:
    zone = moment.tzinfo
    zone_id = getattr(zone, "key", None) or (
        "UTC" if moment.utcoffset() == UTC.utcoffset(None) else str(zone)
    )
    if (letter == "z" and count >= 4) or (letter == "Z" and count >= 3):
        return zone_id
    if letter == "z":
        return moment.tzname() or zone_id
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if count == 2 else ''}{minutes:02d}"


_OUT_OF_RANGE = "the result is outside the years 1 to 9999"


def shift_datetime(moment: datetime, unit: str, amount: int) -> datetime:
    """Move *moment* by *amount* (negative: back) *unit*\\ s, as Joda-Time's ``plusDays()`` etc. do.

    *unit* is ``years``, ``months``, ``weeks``, ``days``, ``hours``, ``minutes`` or ``seconds``.
    Months and years keep the day of month, clamped to the target month (Jan 31 + 1 month is the
    last day of February); days and weeks keep the local time of day in *moment*'s zone; hours,
    minutes and seconds are exact durations.

    Raises:
        ValueError: When the result is outside the years 1 to 9999 or *unit* is unknown.
    """
    if unit in ("years", "months"):
        total = moment.year * 12 + moment.month - 1 + amount * (12 if unit == "years" else 1)
        year, month = divmod(total, 12)
        if not 1 <= year <= 9999:
            raise ValueError(_OUT_OF_RANGE)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)
    if unit not in ("weeks", "days", "hours", "minutes", "seconds"):
        raise ValueError(f"unknown unit {unit!r}")
    zone = moment.tzinfo or UTC
    try:
        delta = timedelta(**{unit: amount})
        if unit in ("weeks", "days"):
            # Wall-clock arithmetic, then normalised so the offset matches the new date.
            return (moment + delta).astimezone(UTC).astimezone(zone)
        return (moment.astimezone(UTC) + delta).astimezone(zone)
    except OverflowError:
        raise ValueError(_OUT_OF_RANGE) from None


def in_time_zone(moment: datetime, zone: str) -> datetime:
    """The same instant as *moment*, seen in the IANA time zone *zone* (``America/Los_Angeles``).

    Raises:
        ValueError: When *zone* is not a known time zone.
    """
    if zone.upper() in ("UTC", "GMT", "Z"):
        return moment.astimezone(UTC)
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {zone!r} (use an IANA name such as 'America/Los_Angeles')"
        ) from None
