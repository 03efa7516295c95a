"""The Backend protocol: the operations the CLI and the TUI need, with one meaning whether they run
in-process (:class:`~agent_sdk.backend.local.LocalBackend`) or against a server
(:class:`~agent_sdk.backend.http.HttpBackend`). Both are bound to one org at construction and raise
only errors of :mod:`agent_sdk.errors`. ``tests/contracts/backend_contract.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from agent_sdk.records import (
    ApiKey,
    AuditEntry,
    Checkpoint,
    Deletion,
    EncryptionKey,
    Event,
    MigrationState,
    Org,
    Page,
    Preview,
    Principal,
    Progress,
    RedactionView,
    Residency,
    RetentionView,
    RewrapReport,
    Run,
    Session,
    SweepReport,
    VerifyReport,
)


class Backend(Protocol):
    kind: str  # "local" or "http"

    @property
    def org_id(self) -> str | None:
        """The org it acts in (None over HTTP: the credential's own)."""
        ...

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

    # -- erasure (admin:orgs on a server) ---------------------------------------------------------
    def delete_run(self, run_id: str) -> Deletion:
        """Erase a run with its events and everything keyed by it, in any status; what went,
        as counts. NotFound afterwards, and for an unknown or another org's run."""
        ...

    def delete_session(self, session_id: str) -> Deletion:
        """Erase a session with every run in it (each as :meth:`delete_run`)."""
        ...

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

    def audit_verify(
        self,
        *,
        anchor: Sequence[Checkpoint] | None = None,
        public_key: str | None = None,
    ) -> VerifyReport:
        """Verify the org's hash chain and signed checkpoints. With ``public_key`` (PEM) every
        signature must be by that key, not the deployment's; with ``anchor`` (checkpoints
        exported to outside the database, which needs ``public_key``) every anchor checkpoint
        must be found intact too (see :mod:`agent_sdk.audit_anchor`)."""
        ...

    def audit_checkpoints(self, *, after: int = 0) -> Iterator[Checkpoint]:
        """The org's signed checkpoints with ``seq > after``, oldest first, streamed."""
        ...

    # -- data residency (the backend's org; reading needs admin:orgs, changing admin:platform)
    def get_residency(self) -> Residency:
        """The region the backend's org is kept in, and whether this backend serves it."""
        ...

    def set_residency(self, region: str | None) -> Residency:
        """Pin the backend's org to ``region`` (None: unpin); InvalidInput for a bad region."""
        ...

    # -- encryption at rest (the backend's org; admin:orgs on a server) -------------------------
    def list_encryption_keys(self) -> list[EncryptionKey]:
        """The org's key generations, oldest first: ids, states and times, never key material."""
        ...

    def rotate_encryption_key(self) -> EncryptionKey:
        """A new active key for the org, used by new writes at once; the previous one is retired
        and still decrypts. Conflict when encryption at rest is off."""
        ...

    def destroy_encryption_keys(self) -> list[EncryptionKey]:
        """Crypto-shred the org: destroy all of its keys, so its encrypted data is unreadable
        for good (other orgs untouched). Returns the org's keys as they are now."""
        ...

    def rewrap_encryption(self, *, limit: int = 500, cursor: str | None = None) -> RewrapReport:
        """Move up to ``limit`` rows of the org to the active key (plaintext rows too); call
        again with ``next_cursor`` until the report is ``done``."""
        ...

    # -- retention (the backend's org; admin:orgs on a server) ---------------------------------
    def get_retention(self) -> RetentionView:
        """The org's retention policy (every limit None: keep everything)."""
        ...

    def set_retention(self, policy: Mapping[str, int | None]) -> RetentionView:
        """Replace the org's policy with ``policy`` (runs_days, events_days, audit_days,
        keep_last_runs_per_session; a missing or None limit is no limit). InvalidInput for an
        unknown field or a value that is not a whole number in its range."""
        ...

    def clear_retention(self) -> RetentionView:
        """Remove the org's policy: keep everything from now on."""
        ...

    def retention_sweep(
        self, *, all_orgs: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> SweepReport:
        """Delete what the retention policy expired now: of the org, or of every org with a
        policy (``all_orgs``; admin:platform on a server). ``dry_run`` counts and deletes
        nothing. ``progress`` hears of each batch (a server reports only the totals)."""
        ...

    # -- PII redaction (the backend's org; admin:orgs on a server) ------------------------------
    def get_redaction(self) -> RedactionView:
        """The org's redaction policy, each built-in detector's state, and whether redaction is
        on (AGENT_SDK_PII_REDACTION_ENABLED) where the backend runs."""
        ...

    def set_redaction(self, policy: Mapping[str, Any]) -> RedactionView:
        """Replace the org's policy with ``policy`` ({"disabled": [...], "patterns": [...]});
        InvalidInput for an unknown detector, a bad name or placeholder, or an unsafe regex."""
        ...

    def reset_redaction(self) -> RedactionView:
        """Every built-in detector and no custom pattern."""
        ...

    def set_redaction_pattern(
        self, name: str, regex: str, placeholder: str | None = None
    ) -> RedactionView:
        """Add the custom pattern ``name``, or replace it (placeholder default: [NAME])."""
        ...

    def delete_redaction_pattern(self, name: str) -> RedactionView:
        """Remove a custom pattern; NotFound when the org has none of that name."""
        ...

    def preview_redaction(self, text: str) -> Preview:
        """``text`` as the org's policy would store it, with counts per detector (nothing is
        stored)."""
        ...

    def migrate(self) -> list[MigrationState]:
        """Apply pending migrations (local only; the HTTP backend raises InvalidInput)."""
        ...

    def migration_status(self) -> list[MigrationState]: ...

    def close(self) -> None:
        """Release resources; a local backend first lets the runs it executes finish."""
        ...
