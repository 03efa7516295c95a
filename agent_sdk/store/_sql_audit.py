"""Checkpoint queries that read the same on SQLite and Postgres (``?`` placeholders, which the
Postgres store turns into ``%s``). The appends stay in each engine's own mixin: they differ in
how they lock the org's head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import InvalidInput
from agent_sdk.records import Checkpoint
from agent_sdk.store._rows import check_limit

CHECKPOINT_COLUMNS = "org_id, seq, head_hash, time, signature, key_id"

# Orgs whose newest record is hash-chained and newer than their newest checkpoint: the ones a
# periodic checkpoint should sign. Each subquery is one seek of an (org_id, seq) primary key,
# so the cost grows with the number of orgs, never with the length of their logs.
_UNSIGNED = """
SELECT id FROM (
    SELECT o.id AS id,
        (SELECT a.seq FROM audit_log a WHERE a.org_id = o.id ORDER BY a.seq DESC LIMIT 1) AS head,
        (SELECT a.hash FROM audit_log a WHERE a.org_id = o.id ORDER BY a.seq DESC LIMIT 1) AS h,
        (SELECT c.seq FROM audit_checkpoints c WHERE c.org_id = o.id ORDER BY c.seq DESC LIMIT 1)
            AS signed
    FROM orgs o WHERE o.id > ? ORDER BY o.id LIMIT ?
) heads
WHERE head IS NOT NULL AND h IS NOT NULL AND head > COALESCE(signed, 0)
"""


class SQLAuditQueries:
    """Part of SQLiteStore and PostgresStore; relies on their ``_query`` and ``_one``."""

    if TYPE_CHECKING:

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def list_checkpoints(
        self, org_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        if after_seq < 0:
            raise InvalidInput("after must be 0 or a seq")
        sql = f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE org_id = ? AND seq > ?"
        params: list[Any] = [org_id, after_seq]
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(check_limit(limit))
        return [Checkpoint(*r) for r in self._query(sql, params)]

    def last_checkpoint(self, org_id: str) -> Checkpoint | None:
        row = self._one(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE org_id = ?"
            " ORDER BY seq DESC LIMIT 1",
            (org_id,),
        )
        return Checkpoint(*row) if row else None

    def unsigned_audit_orgs(self, *, after: str = "", limit: int = 500) -> tuple[list[str], str]:
        """The orgs (of up to ``limit`` orgs with ids after ``after``) whose hash-chained log
        has records past its newest checkpoint, and the id to continue after ("" when done)."""
        limit = check_limit(limit)
        orgs = self._query("SELECT id FROM orgs WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        if not orgs:
            return [], ""
        unsigned = [r[0] for r in self._query(_UNSIGNED, (after, limit))]
        return unsigned, (orgs[-1][0] if len(orgs) == limit else "")


__all__ = ["CHECKPOINT_COLUMNS", "SQLAuditQueries"]
