"""Sessions group the runs of one conversation or job. A run names its session; the session is
created with its first run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent_sdk.records import Deletion, Page, Session

if TYPE_CHECKING:
    from agent_sdk.core.actors import Actor
    from agent_sdk.core.deletion import Erasure
    from agent_sdk.records import RunExpiry
    from agent_sdk.store.base import Store


class SessionService:
    """``run_expiry`` gives an org's retention filter (None: keep everything); ``erasure``,
    which audits and stops runs executing here, is needed by :meth:`delete` only."""

    def __init__(
        self,
        store: Store,
        *,
        run_expiry: Callable[[str], RunExpiry | None] | None = None,
        erasure: Callable[[], Erasure] | None = None,
    ) -> None:
        self.store = store
        self._run_expiry = run_expiry
        self._erasure = erasure

    def _expiry(self, org_id: str) -> RunExpiry | None:
        return self._run_expiry(org_id) if self._run_expiry is not None else None

    def get(self, org_id: str, session_id: str) -> Session:
        # Under a retention policy: NotFound once all its runs expired, and only the runs
        # still visible counted (see agent_sdk.core.retention).
        return self.store.get_session(org_id, session_id, expiry=self._expiry(org_id))

    def list(self, org_id: str, *, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        expiry = self._expiry(org_id)
        return self.store.list_sessions(org_id, limit=limit, cursor=cursor, expiry=expiry)

    def delete(self, org_id: str, session_id: str, *, actor: Actor | None = None) -> Deletion:
        """Erase the session and every run in it (see :mod:`agent_sdk.core.deletion`); audited
        as ``sessions.delete``."""
        if self._erasure is None:
            raise RuntimeError("SessionService.delete needs an erasure (Runtime gives it one)")
        return self._erasure().delete_session(org_id, session_id, get=self.get, actor=actor)
