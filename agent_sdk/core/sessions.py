"""Sessions group the runs of one conversation or job. A run names its session; the session is
created with its first run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sdk.records import Page, Session

if TYPE_CHECKING:
    from agent_sdk.store.base import Store


class SessionService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, org_id: str, session_id: str) -> Session:
        return self.store.get_session(org_id, session_id)

    def list(self, org_id: str, *, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        return self.store.list_sessions(org_id, limit=limit, cursor=cursor)
