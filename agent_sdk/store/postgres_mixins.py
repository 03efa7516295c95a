"""What the Postgres store does differently from SQLite where the SQL is shared: the row and
advisory locks that SQLite's single writer makes unnecessary (:class:`PostgresLocks`, hooks of
:mod:`agent_sdk.store._sql_mixins` and :mod:`agent_sdk.store._sql_audit`), and how a psycopg
error becomes an error of the tree (:func:`translate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict, InvalidInput, NotFound
from agent_sdk.store._driver_errors import noted, unexpected, unstorable

# First key of pg_advisory_xact_lock(int, int) for an org's audit log; the second is the org.
_LOCK_AUDIT = 0x616175  # "aau"


def translate(exc: Exception, db: str) -> AgentSDKError:
    """A psycopg error (or a value the driver cannot send) as one of the agent_sdk errors, in
    words of ours: the driver's text stays in the log (see store._driver_errors)."""
    import psycopg
    from psycopg import errors as pg

    if isinstance(exc, OverflowError | UnicodeEncodeError):
        return unstorable(exc)
    noted(exc)
    if isinstance(exc, pg.UniqueViolation):
        return Conflict("already exists")
    if isinstance(exc, pg.ForeignKeyViolation):
        return NotFound("a referenced record does not exist")
    if isinstance(exc, pg.IntegrityError):
        return InvalidInput("a value was rejected by the database's constraints")
    if isinstance(exc, pg.UndefinedTable | pg.UndefinedColumn):
        return Conflict(f"{db} is not migrated", hint="run `agent-sdk db migrate`")
    if isinstance(exc, pg.LockNotAvailable | pg.QueryCanceled):
        return Conflict(f"{db}: timed out waiting for a lock", hint="retry")
    if isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected):
        return Conflict(f"{db}: a concurrent update won", hint="retry")
    if isinstance(exc, pg.NumericValueOutOfRange):
        return unstorable(OverflowError(str(exc)))
    if isinstance(exc, pg.CharacterNotInRepertoire | pg.UntranslatableCharacter):
        return unstorable(UnicodeError(str(exc)))
    if isinstance(exc, psycopg.DataError):
        return InvalidInput("a value was rejected by the database")
    if isinstance(exc, psycopg.ProgrammingError) and "cannot adapt" in str(exc):
        return InvalidInput("a value of this type cannot be stored")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # A connection that failed or dropped: the server's words say where and why.
        return BackendUnavailable(
            f"{db}: {str(exc).strip()}",
            hint="check AGENT_SDK_DATABASE_URL and that the server is running",
        )
    return unexpected(db, exc)  # a bug here, not an outage


class PostgresLocks:
    """The lock hooks of the shared queries, for PostgresStore (READ COMMITTED)."""

    if TYPE_CHECKING:  # provided by PostgresStore

        def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...
        def _exec_ahead(self, sql: str, params: Sequence[Any] = ()) -> None: ...
        def _in_transaction(self) -> bool: ...

    # SKIP LOCKED: two sweepers of expired Idempotency-Key claims delete different rows instead
    # of queueing on each other.
    _PURGE_LOCK = " FOR UPDATE SKIP LOCKED"

    def _for_update(self) -> str:
        # Inside a transaction (rotation, revocation) the read locks the row until the write,
        # so two rotations at once cannot both replace the same secret.
        return " FOR UPDATE" if self._in_transaction() else ""

    def _lock_audit_head(self, org_id: str) -> None:
        # One appender per org at a time, until commit: the head read that follows is then the
        # true head (a new READ COMMITTED snapshot), and the chain cannot fork. Sent with that
        # read (or insert) in one round trip: the server still takes the lock first.
        self._exec_ahead("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_AUDIT, org_id))


__all__ = ["PostgresLocks", "translate"]
