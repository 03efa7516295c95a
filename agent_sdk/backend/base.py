"""The Backend protocol: the operations the CLI and the TUI need, with one meaning whether they run
in-process (:class:`~agent_sdk.backend.local.LocalBackend`) or against a server
(:class:`~agent_sdk.backend.http.HttpBackend`). Both are bound to one org at construction and raise
only errors of :mod:`agent_sdk.errors`. ``tests/contracts/backend_contract.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from agent_sdk.records import Event, MigrationState, Page, Run, Session


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
    ) -> Run: ...

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

    def list_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]: ...

    def follow_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Events after ``after`` as they happen, ending after the run's terminal event."""
        ...

    def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> Page[Session]: ...

    def get_session(self, session_id: str) -> Session: ...

    def migrate(self) -> list[MigrationState]:
        """Apply pending migrations (local only; the HTTP backend raises InvalidInput)."""
        ...

    def migration_status(self) -> list[MigrationState]: ...

    def close(self) -> None:
        """Release resources; a local backend first lets the runs it executes finish."""
        ...
