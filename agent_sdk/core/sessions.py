"""Sessions group the runs of one conversation or job. A run names its session; the session is
created with its first run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sdk.records import Deletion, Page, Session

if TYPE_CHECKING:
    from agent_sdk.core.actors import Actor
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.store.base import Store


class SessionService:
    def __init__(self, store: Store, runtime: Runtime | None = None) -> None:
        self.store = store
        self._runtime = runtime  # for erasure, which audits and stops runs executing here

    def get(self, org_id: str, session_id: str) -> Session:
        # Under a retention policy: NotFound once all its runs expired, and only the runs
        # still visible counted (see agent_sdk.core.retention).
        expiry = self._runtime.retention.run_expiry(org_id) if self._runtime else None
        return self.store.get_session(org_id, session_id, expiry=expiry)

    def list(self, org_id: str, *, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        expiry = self._runtime.retention.run_expiry(org_id) if self._runtime else None
        return self.store.list_sessions(org_id, limit=limit, cursor=cursor, expiry=expiry)

    def delete(self, org_id: str, session_id: str, *, actor: Actor | None = None) -> Deletion:
        """Erase the session and every run in it (see :mod:`agent_sdk.core.deletion`); audited
        as ``sessions.delete``."""
        from agent_sdk.core.deletion import delete_session

        if self._runtime is None:
            raise RuntimeError("SessionService.delete needs the runtime (Runtime builds it so)")
        return delete_session(self._runtime, org_id, session_id, actor=actor)
