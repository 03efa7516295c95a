"""The Backend protocol: the operations the CLI and the TUI need, with one meaning whether they run
in-process (:class:`~agent_sdk.backend.local.LocalBackend`) or against a server
(:class:`~agent_sdk.backend.http.HttpBackend`). Both are bound to one org at construction and raise
only errors of :mod:`agent_sdk.errors`. ``tests/contracts/backend_contract.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from agent_sdk.records import (
    ApiKey,
    AuditEntry,
    Event,
    MigrationState,
    Org,
    Page,
    Principal,
    Run,
    Session,
)

if TYPE_CHECKING:
    from agent_sdk.governance.audit_verify import VerifyReport


class Backend(Protocol):
    kind: str  # "local" or "http"

    def create_run(
        self,
        agent: str | dict[str, Any],
        input: str,
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """A new queued run. With ``idempotency_key`` a repeat of the same request (same
        agent, input, session, metadata and script) within the key's lifetime returns the run
        the first one created instead of a second run; the same key with another request is
        InvalidInput, and one still in flight is Conflict."""
        ...

    def get_run(self, run_id: str) -> Run: ...

    def list_runs(
        self,
        *,
        status: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]: ...

    def cancel_run(self, run_id: str) -> Run: ...

    def retry_run(self, run_id: str) -> Run:
        """A failed, dead or cancelled run queued again (attempts kept); Conflict for a run
        that succeeded or has not finished."""
        ...

    def retry_runs(self, status: Sequence[str], since: str | None = None) -> list[Run]:
        """Retry every run in ``status`` created since ``since`` (an age such as ``1h`` or an
        ISO time; None: any time), up to 1000; return the runs retried."""
        ...

    def status(self) -> dict[str, Any]:
        """Execution mode, store check, queue depth (queue mode) and live workers."""
        ...

    def list_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]: ...

    def follow_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Events after ``after`` as they happen, ending after the run's terminal event."""
        ...

    def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> Page[Session]: ...

    def get_session(self, session_id: str) -> Session: ...

    # -- access control (the backend's org; admin:* scopes on a server) ------------------------
    def whoami(self) -> Principal:
        """The credential in use: its subject, org and scopes (local: the database owner)."""
        ...

    def create_org(self, org_id: str, *, name: str | None = None) -> Org: ...

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]: ...

    def get_org(self, org_id: str) -> Org: ...

    def create_key(
        self,
        *,
        name: str,
        role: str = "viewer",
        scopes: Sequence[str] | None = None,
        expires_at: str | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key of the backend's org and its token, which is shown only this once."""
        ...

    def list_keys(self, *, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]: ...

    def get_key(self, key_id: str) -> ApiKey: ...

    def rotate_key(self, key_id: str, *, grace_seconds: float = 0) -> tuple[ApiKey, str]: ...

    def revoke_key(self, key_id: str) -> ApiKey: ...

    def audit_tail(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]: ...

    def audit_export(self, *, format: str = "jsonl", since: str | None = None) -> Iterator[str]:
        """The org's audit log as lines (jsonl or csv, csv with a header), streamed."""
        ...

    def audit_verify(self) -> VerifyReport: ...

    def migrate(self) -> list[MigrationState]:
        """Apply pending migrations (local only; the HTTP backend raises InvalidInput)."""
        ...

    def migration_status(self) -> list[MigrationState]: ...

    def close(self) -> None:
        """Release resources; a local backend first lets the runs it executes finish."""
        ...
