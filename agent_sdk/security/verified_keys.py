"""API keys this process has verified, so that the next request with one costs a dictionary
lookup instead of a checksum, an HMAC and a read of the key's row.

This module only keeps the entries. What makes keeping them safe is the rule of its one user,
:meth:`agent_sdk.core.api_keys.KeyService.authenticate`: an entry is trusted only while the
store's API-key generation (one row that every change to a key moves) still has the value it had
when the key was verified, and an entry's expiry is checked against the clock on every use.

Entries are keyed by the SHA-256 of the token, so the table holds no token: a memory dump of a
long-running server shows digests, which unlock nothing. Only tokens that passed verification are
added, so garbage cannot fill the table; and past ``max_entries`` it starts again empty.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime

from agent_sdk.records import Principal

MAX_ENTRIES = 10_000


def fingerprint(token: str) -> bytes:
    """What the table is keyed by: the SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(slots=True)
class Verified:
    """One verified token."""

    principal: Principal
    generation: int  # the store's API-key generation when the key was read
    until: datetime | None  # refused from this instant on: its expiry, or the end of its grace
    touch_due: datetime  # when last_used_at is due to be written again


class VerifiedKeys:
    """Fingerprint -> :class:`Verified`. Lookups take no lock (one dict read); changes do."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[bytes, Verified] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, fp: bytes) -> Verified | None:
        return self._entries.get(fp)

    def put(self, fp: bytes, entry: Verified) -> None:
        with self._lock:
            if len(self._entries) >= self._max and fp not in self._entries:
                self._entries = {}
            self._entries[fp] = entry

    def forget(self, key_id: str) -> None:
        """Drop every entry of ``key_id`` (its current and its previous secret)."""
        with self._lock:
            self._entries = {
                fp: e for fp, e in self._entries.items() if e.principal.key_id != key_id
            }

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["MAX_ENTRIES", "Verified", "VerifiedKeys", "fingerprint"]
