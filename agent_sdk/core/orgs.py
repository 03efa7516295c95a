"""Orgs: every request and every CLI call acts in one. This issue only reads them; creating
and listing orgs arrives with access control."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sdk.records import Org

if TYPE_CHECKING:
    from agent_sdk.store.base import Store


class OrgService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, org_id: str) -> Org:
        """The org, or NotFound: an unknown org is an error on every backend, never an empty
        listing that looks like an org without runs."""
        return self.store.get_org(org_id)
