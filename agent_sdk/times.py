"""Times and durations typed by people: one parser for every option and query parameter.

``--since`` of ``audit export`` once compared the text ``yesterday`` with stored timestamps and
matched nothing, exiting 0 with an empty export. Every time a user gives (``--since``,
``--expires``, ``--grace``, the ``since`` query parameter) now goes through here, and a text
that is not a time is :class:`~agent_sdk.errors.InvalidInput` (exit 2, HTTP 422) naming the
formats that are accepted.

Accepted:

* an ISO-8601 time: ``2025-01-31``, ``2025-01-31T12:00``, ``2025-01-31T12:00:00Z``,
  ``2025-01-31T12:00:00.5+02:00`` (without an offset it is UTC);
* an age or a duration: a number and a unit, ``90s``, ``15m``, ``1h``, ``2d``, ``1w`` (a bare
  number is seconds). As a time it counts back from now (``--since 2d``) or, for a time in the
  future (``--expires 30d``), forward.

Words such as ``yesterday`` are refused rather than guessed at. Times come back as fixed-width
UTC text (``2025-01-31T12:00:00.000000Z``), which sorts like the times it names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agent_sdk.errors import InvalidInput

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMATS = "a number and a unit: 90s, 15m, 1h, 2d, 1w (a bare number is seconds)"
TIME_FORMATS = (
    "an ISO-8601 time (2025-01-31, 2025-01-31T12:00:00Z, 2025-01-31T12:00:00+02:00) or an age"
    " such as 30m, 1h, 2d, 1w"
)
_MAX_TEXT = 64  # longer than any time; a hostile 1 MB "time" is refused before any regex


def iso(when: datetime) -> str:
    """Fixed-width UTC text with microseconds and ``Z`` (the form the stores keep)."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_duration(text: str, what: str = "duration") -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``30d``, ``2w`` -> seconds, else InvalidInput."""
    match = _DURATION.fullmatch(_clean(text, what).lower())
    if match is None:
        raise InvalidInput(f"{what} {text!r} is not a duration", hint="use " + DURATION_FORMATS)
    return float(match[1]) * _UNITS[match[2]]


def parse_instant(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time (a date alone is its midnight; no offset is UTC), else InvalidInput."""
    try:
        when = datetime.fromisoformat(_clean(text, what).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not a time", hint="use " + TIME_FORMATS) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def resolve_since(text: str, what: str = "since", *, now: datetime | None = None) -> str:
    """An age (``2d``: that long before ``now``) or an ISO-8601 time -> fixed-width UTC text."""
    return iso(_resolve(text, what, now, -1))


def resolve_until(text: str, what: str = "until", *, now: datetime | None = None) -> str:
    """A duration from ``now`` (``30d``) or an ISO-8601 time -> fixed-width UTC text."""
    return iso(_resolve(text, what, now, +1))


def _resolve(text: str, what: str, now: datetime | None, sign: int) -> datetime:
    cleaned = _clean(text, what)
    if _DURATION.fullmatch(cleaned.lower()):
        seconds = parse_duration(cleaned, what)
        base = now or datetime.now(UTC)
        try:
            return base + sign * timedelta(seconds=seconds)
        except OverflowError:  # "999999999w": as far as a datetime goes
            return (datetime.min if sign < 0 else datetime.max).replace(tzinfo=UTC)
    return parse_instant(cleaned, what)


def _clean(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
        shown = text if isinstance(text, str) and len(text) <= _MAX_TEXT else "…"
        raise InvalidInput(f"{what} {shown!r} is not a time", hint="use " + TIME_FORMATS)
    return text.strip()


__all__ = [
    "DURATION_FORMATS",
    "TIME_FORMATS",
    "iso",
    "parse_duration",
    "parse_instant",
    "resolve_since",
    "resolve_until",
]
