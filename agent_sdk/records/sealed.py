"""What encryption at rest leaves in the store: a key generation as stored, its states, and the
prefix every sealed value starts with.

These are shared by the codec that makes them (:mod:`agent_sdk.governance.envelope`) and the
store that keeps them (:mod:`agent_sdk.store.wrapped_keys`, :mod:`agent_sdk.store.sealing`), which
may not import each other. Unlike the rest of :mod:`agent_sdk.records` they never cross a Backend
(a listing shows an :class:`~agent_sdk.records.EncryptionKey`, without key material), so the
package root does not re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What every sealed value starts with (the format's version included).
SEALED_PREFIX = "enc:v1:"

ACTIVE = "active"
RETIRED = "retired"
DESTROYED = "destroyed"
STATES = (ACTIVE, RETIRED, DESTROYED)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key generation of an org as stored: wrapped key material (None once destroyed)."""

    org_id: str
    id: str
    state: str
    master_key_id: str
    kek: str | None
    dek: str | None
    created_at: str
    retired_at: str | None = None
    destroyed_at: str | None = None


__all__ = ["ACTIVE", "DESTROYED", "RETIRED", "SEALED_PREFIX", "STATES", "StoredKey"]
