"""Orgs: every record belongs to one, every request and CLI call acts in one."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import InvalidInput, PermissionDenied
from agent_sdk.records import Page
from agent_sdk.security.scopes import ADMIN_PLATFORM

if TYPE_CHECKING:
    from agent_sdk.core.audit import AuditService
    from agent_sdk.records import Org, Principal
    from agent_sdk.store.base import Store

ORG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_org_id(org_id: str) -> str:
    if not isinstance(org_id, str) or not ORG_ID.fullmatch(org_id):
        raise InvalidInput(
            f"invalid org id {org_id!r}", hint="an org id is 1-64 letters, digits, '_' or '-'"
        )
    return org_id


class OrgService:
    def __init__(self, store: Store, *, audit: Callable[[], AuditService]) -> None:
        self.store = store
        self._audit = audit
        # Orgs are never deleted in this version, so an org once seen exists for the life of
        # the process: every request checks its org, and this spares that read. (Org deletion,
        # when it comes, must evict here and in every other process.)
        self._known: dict[str, Org] = {}

    def create(self, org_id: str, *, name: str | None = None, actor: Actor | None = None) -> Org:
        check_org_id(org_id)
        name = (name or org_id).strip()
        if not 0 < len(name) <= 200 or not name.isprintable():
            raise InvalidInput("an org name is 1-200 printable characters")
        with self.store.transaction():
            org = self.store.create_org(org_id, name)
            audit_action(self._audit(), org_id, actor, "orgs.create", org_id)
        return org

    def get(self, org_id: str) -> Org:
        """The org, or NotFound: an unknown org is an error on every backend, never an empty
        listing that looks like an org without runs."""
        org = self._known.get(org_id)
        if org is None:
            org = self._known[org_id] = self.store.get_org(org_id)
        return org

    def list(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        return self.store.list_orgs(limit=limit, cursor=cursor)

    # -- as a principal sees them (the HTTP API's rules) ----------------------------------------
    def create_as(
        self, principal: Principal, org_id: str, *, name: str | None, actor: Actor | None
    ) -> Org:
        if not principal.can(ADMIN_PLATFORM):
            exc = PermissionDenied(
                "this credential lacks the scope 'admin:platform', which creating an org needs",
                hint="ask the platform operator to create the org",
            )
            # Recorded in the caller's own org: the org it named does not exist.
            audit_action(
                self._audit(),
                principal.org_id,
                actor,
                "orgs.create",
                org_id if ORG_ID.fullmatch(str(org_id)) else None,
                outcome="denied",
                details={"reason": exc.message},
            )
            raise exc
        return self.create(org_id, name=name, actor=actor)

    def list_as(
        self, principal: Principal, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Org]:
        """Every org for a platform key; otherwise only the principal's own."""
        if principal.can(ADMIN_PLATFORM):
            return self.list(limit=limit, cursor=cursor)
        return Page([self.get(principal.org_id)])

    def get_as(self, principal: Principal, org_id: str) -> Org:
        if not principal.acts_in(org_id):
            raise PermissionDenied(f"this credential may not act in org {org_id!r}")
        return self.get(org_id)
