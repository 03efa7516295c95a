"""Who does what: the actor of every state-changing call, and the one way it reaches the audit
log. Core services record their own actions, inside the transaction that makes the change, so
the record and the change commit together or not at all (fail closed), whichever edge called:
the HTTP server, the local CLI, or a worker."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_sdk.core.audit import AuditService
    from agent_sdk.records import Principal


@dataclass(frozen=True)
class Actor:
    subject: str
    kind: str
    request_id: str | None = None
    source_ip: str | None = None

    @classmethod
    def of(
        cls, principal: Principal, *, request_id: str | None = None, source_ip: str | None = None
    ) -> Actor:
        return cls(principal.subject, principal.kind, request_id, source_ip)

    @classmethod
    def local(cls) -> Actor:
        """The operator of a local database: whoever can open the file owns it."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(f"local:{user}", "local")


SYSTEM = Actor("system", "system")


def local_principal(org_id: str) -> Principal:
    """The authority of the local operator (the CLI on a database file, without a server): every
    scope, ``admin:platform`` included. Whoever can open the file can rewrite any row of it, so
    a narrower principal here would be a speed bump, not a boundary; the delegation rule still
    runs on this principal, so the local and HTTP paths take the same code."""
    from agent_sdk.records import Principal
    from agent_sdk.security.scopes import SCOPES

    return Principal(
        subject=Actor.local().subject, org_id=org_id, scopes=frozenset(SCOPES), kind="local"
    )


def audit_action(
    audit: AuditService,
    org_id: str,
    actor: Actor | None,
    action: str,
    target: str | None,
    *,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
) -> None:
    who = actor or SYSTEM
    audit.record(
        org_id,
        actor=who.subject,
        actor_kind=who.kind,
        action=action,
        target=target,
        outcome=outcome,
        request_id=who.request_id,
        source_ip=who.source_ip,
        details=details,
    )
