"""Time-sortable ids and timestamps.

Ids are ``<prefix>_`` + a ULID in Crockford base32 (26 characters: a 48-bit millisecond timestamp
then 80 random bits). Because the timestamp leads, sorting ids sorts by creation time, which is
what lets every listing paginate newest first on the primary-key index alone.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ascending in ASCII, so text order = number order
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _reset_after_fork() -> None:
    # A forked child would otherwise continue the parent's sequence and mint the parent's next ids.
    global _last_ms
    _last_ms = -1


os.register_at_fork(after_in_child=_reset_after_fork)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid() -> str:
    """A new 26-character ULID, strictly greater than the previous one made in this process."""
    global _last_ms, _last_random
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            rand = int.from_bytes(os.urandom(10), "big")  # what secrets.token_bytes does
        else:
            # Same millisecond, or the clock stepped back: count up from the last id instead of
            # drawing fresh bits, so ids made in order still sort in order.
            ms, rand = _last_ms, _last_random + 1
            if rand > _RANDOM_MAX:
                ms, rand = ms + 1, 0
        _last_ms, _last_random = ms, rand
    return _encode((ms << _RANDOM_BITS) | rand)


def new_id(prefix: str) -> str:
    """``new_id("run")`` -> ``run_01JDQ7...``: unique, and later ids sort after earlier ones."""
    return f"{prefix}_{ulid()}"


def id_floor(prefix: str, when: datetime) -> str:
    """The smallest id ``prefix`` could have been given at ``when``: every id made at or after
    that millisecond sorts at or above it, so ``id >= id_floor(...)`` is a time bound that the
    primary-key index serves."""
    ms = max(0, int(when.timestamp() * 1000))
    return f"{prefix}_{_encode(ms << _RANDOM_BITS)}"


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; a naive time is UTC), else InvalidInput."""
    from agent_sdk.errors import InvalidInput

    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise InvalidInput(
            f"{text!r} is not an ISO-8601 time", hint="e.g. 2025-01-31T12:00:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def utcnow() -> str:
    """ISO-8601 UTC with microseconds and ``Z``; fixed width, so strings sort like the times."""
    # isoformat is several times faster than strftime, and this runs for every event.
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


__all__ = ["id_floor", "new_id", "parse_time", "ulid", "utcnow"]
