"""The Store protocol: every read and write of tenant data takes the org as a required argument,
so a query without a tenant cannot be written.

Implementations: :mod:`agent_sdk.store.sqlite` (the embedded default) and
:mod:`agent_sdk.store.postgres`; both run the same contract suite
(``tests/contracts/store_contract.py``) unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agent_sdk.records import (
    Deletion,
    Event,
    MigrationState,
    Org,
    Page,
    Run,
    RunExpiry,
    RunStatus,
    Session,
)
from agent_sdk.store.api_keys import KeyStore
from agent_sdk.store.audit import AuditStore
from agent_sdk.store.idempotency import IdempotencyStore
from agent_sdk.store.retention import RetentionStore
from agent_sdk.store.workers import WorkerStore
from agent_sdk.store.wrapped_keys import EncryptionKeyStore

if TYPE_CHECKING:
    from agent_sdk.store.pg_notify import EventSink, NotifyListener


class Store(
    KeyStore,
    AuditStore,
    IdempotencyStore,
    WorkerStore,
    RetentionStore,
    EncryptionKeyStore,
    Protocol,
):
    scheme: ClassVar[str]
    # Capabilities, declared by each store (read them; never probe for a method):
    # pushes_events: listen_events can tell this process of the events other processes append
    # (Postgres LISTEN/NOTIFY). A store without it answers None, and readers poll.
    pushes_events: ClassVar[bool]
    # purges_deleted: deleted rows may linger in the store's own files (SQLite's WAL) until
    # purge_deleted scrubs them. A store without it has nothing to purge (purge_deleted: True).
    purges_deleted: ClassVar[bool]

    def listen_events(self, sink: EventSink) -> NotifyListener | None:
        """Push every appended event's run and seq to ``sink``, from any process on this store
        (started, to be closed by the caller); None where the store cannot."""
        ...

    def purge_deleted(self, *, timeout: float = 0.5) -> bool:
        """Scrub what was just deleted out of the store's files; False if it could not finish
        within ``timeout`` seconds (the store's own housekeeping does it later)."""
        ...

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> list[MigrationState]:
        """Apply pending migrations; return the ones applied now (idempotent)."""
        ...

    def migration_status(self) -> list[MigrationState]:
        """Every known migration, with ``applied_at`` None for pending ones."""
        ...

    def check(self) -> None:
        """Raise BackendUnavailable if the store cannot be reached, Conflict if migrations pend."""
        ...

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one short transaction (nested calls join the outer one)."""
        ...

    # -- small key/value settings of the deployment (not tenant data) -----------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str, *, only_if_absent: bool = False) -> bool:
        """Store a value; with ``only_if_absent`` keep an existing one and return False."""
        ...

    # -- orgs ------------------------------------------------------------------------------
    def ensure_org(self, org_id: str, name: str | None = None) -> Org: ...

    def create_org(self, org_id: str, name: str) -> Org:
        """Raise Conflict if the org exists."""
        ...

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        """All orgs by id (a platform listing: the one read that is not scoped to an org)."""
        ...

    def get_org(self, org_id: str) -> Org:
        """Raise NotFound if the org does not exist."""
        ...

    # -- per-org settings --------------------------------------------------------------------
    def get_org_setting(self, org_id: str, name: str) -> Any:
        """The JSON value of an org's setting ``name`` (a governance policy), None if unset."""
        ...

    def set_org_setting(self, org_id: str, name: str, value: Any) -> None:
        """Set (or with None, remove) an org's setting. NotFound for an unknown org."""
        ...

    def list_org_settings(self, name: str) -> list[tuple[str, Any]]:
        """Every org that has setting ``name``, with its value, by org id."""
        ...

    # -- sessions --------------------------------------------------------------------------
    def create_session(
        self, org_id: str, session_id: str, *, metadata: dict[str, Any] | None = None
    ) -> Session: ...

    def get_session(
        self, org_id: str, session_id: str, *, expiry: RunExpiry | None = None
    ) -> Session:
        """Raise NotFound (also for another org's session, and with ``expiry`` for a session
        whose runs all expired; its run_count then counts only the runs still visible)."""
        ...

    def list_sessions(
        self,
        org_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        expiry: RunExpiry | None = None,
    ) -> Page[Session]:
        """Newest first, keyset-paginated. With ``expiry`` (a retention policy's cutoffs)
        without the sessions whose runs all expired by age, and with run counts of the runs
        still visible (see :mod:`agent_sdk.store.retention`)."""
        ...

    # -- runs ------------------------------------------------------------------------------
    def insert_run(self, run: Run) -> Run:
        """Insert a new run (its org is ``run.org_id``); creates its session if missing."""
        ...

    def get_run(self, org_id: str, run_id: str) -> Run: ...

    def list_runs(
        self,
        org_id: str,
        *,
        status: Sequence[RunStatus] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: str | None = None,
        expiry: RunExpiry | None = None,
    ) -> Page[Run]:
        """Newest first, keyset-paginated: cost does not grow with the table. With
        ``created_after`` (an ISO-8601 time) only runs created at or after it; with ``expiry``
        (a retention policy's cutoffs) without the runs it has expired."""
        ...

    def update_run(
        self,
        org_id: str,
        run_id: str,
        *,
        expect_status: Sequence[RunStatus] | None = None,
        expect_attempts: int | None = None,
        **fields: Any,
    ) -> Run | None:
        """Set ``fields`` (status, output, error, usage, steps, attempts, started_at,
        finished_at, cancel_requested). With ``expect_status`` the update happens only if the
        run is in one of those statuses (compare-and-set), and with ``expect_attempts`` only
        if its attempt counter still has that value: an attempt that another worker took over
        cannot write any more. Returns None when it did not apply. Raises NotFound for an
        unknown run."""
        ...

    def watch_runs(
        self, attempts: Sequence[tuple[str, str, int]], *, touch: bool = False
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """What a process running attempts needs to know about them, for many runs at once.
        ``attempts`` holds (org_id, run_id, attempt) triples; the answer maps (org_id, run_id)
        of every run that still exists to its (attempts, cancel_requested): a run missing from
        it was deleted, one whose counter moved on was taken over. With ``touch``, first set
        ``updated_at`` (a heartbeat) on those of the runs still ``running`` under that very
        attempt, in one statement: the heartbeat is fenced like every other write."""
        ...

    # -- events ----------------------------------------------------------------------------
    def append_event(
        self,
        org_id: str,
        run_id: str,
        type: str,
        data: dict[str, Any],
        *,
        time: str | None = None,
        attempt: int | None = None,
    ) -> Event:
        """Append one event with the next ``seq`` of the run (1, 2, 3, ... never reused).

        No event follows a run's terminal event: once the run is terminal and its last event
        is the terminal one, an append raises Conflict (an operator's retry re-opens the run by
        setting it back to ``queued`` in the transaction that appends its ``run.retrying``).
        With ``attempt`` the append is fenced by the run's attempt counter in the same
        statement or transaction: it applies only while ``attempts`` is still ``attempt`` and
        the run has not ended, and raises Superseded otherwise."""
        ...

    def append_events(
        self,
        org_id: str,
        run_id: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        attempt: int | None = None,
    ) -> list[Event]:
        """Append ``events`` (type, data) in order, in one transaction: all or none, each under
        the rules of :meth:`append_event` (the fence by ``attempt`` included). Joins the
        caller's transaction if there is one. An attempt writes the events of a step this way,
        one commit instead of one per event."""
        ...

    def list_events(
        self, org_id: str, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Events with ``seq > after`` in order. Raises NotFound for another org's run."""
        ...

    def prune_events(self, org_id: str, run_id: str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` events of the run; return how many went. Seqs of
        the kept events do not change, so readers resume after any seq as before."""
        ...

    def iter_events(self, org_id: str, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """All events after ``after``, read page by page."""
        ...

    # -- erasure -----------------------------------------------------------------------------
    def delete_run(self, org_id: str, run_id: str) -> Deletion:
        """Erase a run in one transaction: its events (tool results and usage included), the
        Idempotency-Key claims whose stored answer is the run, then the row. Returns the counts.
        NotFound for an unknown run and for another org's, alike. Writers of the run that come
        after (a worker still executing it) get NotFound: nothing can bring a row back."""
        ...

    def delete_session(self, org_id: str, session_id: str) -> Deletion:
        """Erase a session and every run in it (each as :meth:`delete_run`), in one
        transaction. NotFound for an unknown session and for another org's, alike."""
        ...
