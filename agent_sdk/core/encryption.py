"""Encryption keys of an org: list, rotate, destroy (crypto-shredding), and move old rows to the
active key. The mechanics are in :mod:`agent_sdk.core.encryption_keyring`; this service adds
what a change needs around them: the org check, the audit record in the same transaction, and
dropping this process's cached keys once the change has committed.

Audit records name key ids and counts only: never key material, never data.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent_sdk.core import encryption_keyring as keys
from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.core.encryption_keyring import MAX_BATCH as MAX_BATCH
from agent_sdk.errors import Conflict
from agent_sdk.records import EncryptionKey, RewrapReport

# Re-exported (``MAX_BATCH as MAX_BATCH`` above): the most rows one rewrap call examines, for the
# edges that describe it (the HTTP API's schema).

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.governance.envelope import EnvelopeCodec
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)


class EncryptionService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        orgs: OrgService,
        audit: Callable[[], AuditService],
    ) -> None:
        self.settings = settings
        self.store = store
        self._orgs = orgs
        self._audit_service = audit

    @property
    def enabled(self) -> bool:
        return self.settings.encryption.enabled

    def _codec(self) -> EnvelopeCodec:
        from agent_sdk.governance.envelope import EnvelopeCodec

        codec = self.store.codec
        if not self.enabled or not isinstance(codec, EnvelopeCodec):
            raise Conflict(
                "encryption at rest is not enabled on this deployment",
                hint="set AGENT_SDK_ENCRYPTION_ENABLED=true and AGENT_SDK_ENCRYPTION_MASTER_KEY"
                " (or _FILE), then restart",
            )
        return codec

    def _audit(
        self,
        org_id: str,
        actor: Actor | None,
        action: str,
        target: str | None,
        details: dict[str, object],
    ) -> None:
        audit_action(self._audit_service(), org_id, actor, action, target, details=details)

    # -- queries ---------------------------------------------------------------------------------
    def list(self, org_id: str) -> list[EncryptionKey]:
        """The org's key generations, oldest first (metadata only)."""
        self._orgs.get(org_id)
        return keys.list_keys(self.store, org_id)

    # -- changes ---------------------------------------------------------------------------------
    def rotate(self, org_id: str, *, actor: Actor | None = None) -> EncryptionKey:
        """A new active key (KEK and DEK) for the org; the old one is retired and still
        decrypts. New writes in this process use the new key at once."""
        codec = self._codec()
        self._orgs.get(org_id)
        with self.store.transaction():
            key, retired = keys.rotate(self.store, codec.master, org_id)
            self._audit(org_id, actor, "encryption_keys.rotate", key.id, {"retired": retired})
        codec.forget(org_id)
        return key

    def destroy(self, org_id: str, *, actor: Actor | None = None) -> builtins.list[EncryptionKey]:
        """Crypto-shred the org: overwrite the wrapped material of all of its keys, so every
        value sealed under them is unreadable for good. Other orgs are untouched. Works with
        encryption off too (keys made while it was on can always be destroyed). Returns the
        org's keys as they are now."""
        self._orgs.get(org_id)
        with self.store.transaction():
            ids = keys.destroy(self.store, org_id)
            self._audit(org_id, actor, "encryption_keys.destroy", None, {"destroyed": ids})
        codec = self.store.codec
        forget = getattr(codec, "forget", None)
        if forget is not None:
            forget(org_id)
        if ids and not self.store.scrub_freed_space():
            log.warning(
                "the keys of org %s are destroyed, but old copies of their rows stay in the"
                " database files until the next checkpoint or vacuum",
                org_id,
            )
        return keys.list_keys(self.store, org_id)

    def rewrap(
        self,
        org_id: str,
        *,
        limit: int = 500,
        cursor: str | None = None,
        actor: Actor | None = None,
    ) -> RewrapReport:
        """One bounded pass of the re-encryption job (see
        :func:`agent_sdk.core.encryption_keyring.rewrap`); call again with the report's
        ``next_cursor`` until it is done."""
        codec = self._codec()
        self._orgs.get(org_id)
        report = keys.rewrap(self.store, codec, org_id, limit=limit, cursor=cursor)
        if report.rewrapped:
            details: dict[str, object] = {"key": report.key_id, "rewrapped": report.rewrapped}
            with self.store.transaction():
                self._audit(org_id, actor, "encryption_keys.rewrap", report.key_id, details)
        return report


__all__ = ["EncryptionService"]
