"""In-process backend on the local store. Runs it creates execute in this process, on the
runtime's engine thread; :meth:`close` waits for them, so a CLI call never leaves a run behind
in ``running``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

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
    from agent_sdk.config import Settings
    from agent_sdk.core.actors import Actor
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.governance.audit_verify import VerifyReport


def _actor() -> Actor:
    # Whoever can open the database file owns it: the local backend acts with the full
    # authority of that OS user, and the audit log says so.
    from agent_sdk.core.actors import Actor

    return Actor.local()


DEFAULT_ORG = "default"  # the org the first migration creates


class LocalBackend:
    kind = "local"

    def __init__(self, settings: Settings, *, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.org_id = settings.org_id or DEFAULT_ORG
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        # Built on first use so `db status` can inspect a database without migrating it.
        if self._runtime is None:
            from agent_sdk.core.runtime import Runtime

            runtime = Runtime(self.settings)
            try:
                runtime.orgs.get(self.org_id)
            except BaseException:
                runtime.close(wait=False)
                raise
            self._runtime = runtime
        return self._runtime

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
        return self.runtime.runs.create(
            self.org_id,
            agent,
            input,
            session_id=session_id,
            metadata=metadata,
            script=script,
            actor=_actor(),
            idempotency_key=idempotency_key,
        )

    def get_run(self, run_id: str) -> Run:
        return self.runtime.runs.get(self.org_id, run_id)

    def list_runs(
        self,
        *,
        status: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]:
        return self.runtime.runs.list(
            self.org_id, status=status, session_id=session_id, limit=limit, cursor=cursor
        )

    def cancel_run(self, run_id: str) -> Run:
        return self.runtime.runs.cancel(self.org_id, run_id, actor=_actor())

    def retry_run(self, run_id: str) -> Run:
        return self.runtime.runs.retry(self.org_id, run_id, actor=_actor())

    def retry_runs(self, status: Sequence[str], since: str | None = None) -> list[Run]:
        return self.runtime.runs.retry_many(
            self.org_id, status=list(status), since=since, actor=_actor()
        )

    def status(self) -> dict[str, Any]:
        from agent_sdk.core.status import status

        return status(self.runtime)

    def list_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        return self.runtime.runs.events(self.org_id, run_id, after=after, limit=limit)

    def follow_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        import asyncio

        # The stream lives on the engine loop (where the bus delivers); pull it from this thread.
        runs = self.runtime.runs
        loop = self.runtime.executor.loop
        agen = runs.stream(self.org_id, run_id, after=after)

        steps: list[asyncio.Task[Any]] = []

        async def step() -> Event:
            task = asyncio.current_task()
            steps[:] = [task] if task is not None else []
            return await anext(agen)

        async def close() -> None:
            # A reader interrupted mid-wait (Ctrl-C) leaves a step running on the loop; closing
            # the generator under it would raise "already running", so end the step first.
            for task in steps:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await agen.aclose()

        try:
            while True:
                try:
                    yield asyncio.run_coroutine_threadsafe(step(), loop).result()
                except StopAsyncIteration:
                    return
        finally:
            asyncio.run_coroutine_threadsafe(close(), loop).result()

    def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        return self.runtime.sessions.list(self.org_id, limit=limit, cursor=cursor)

    def get_session(self, session_id: str) -> Session:
        return self.runtime.sessions.get(self.org_id, session_id)

    # -- access control ---------------------------------------------------------------------------
    def whoami(self) -> Principal:
        from agent_sdk.security.scopes import SCOPES

        _ = self.runtime  # the org must exist, as on a server
        return Principal(
            subject=_actor().subject,
            org_id=self.org_id,
            scopes=frozenset(SCOPES),
            kind="local",
        )

    def create_org(self, org_id: str, *, name: str | None = None) -> Org:
        return self.runtime.orgs.create(org_id, name=name, actor=_actor())

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        return self.runtime.orgs.list(limit=limit, cursor=cursor)

    def get_org(self, org_id: str) -> Org:
        return self.runtime.orgs.get(org_id)

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
        return self.runtime.keys.create(
            self.org_id,
            name=name,
            role=role,
            scopes=scopes,
            expires_at=expires_at,
            rate_per_second=rate_per_second,
            burst=burst,
            ip_allowlist=ip_allowlist,
            actor=_actor(),
        )

    def list_keys(self, *, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        return self.runtime.keys.list(self.org_id, limit=limit, cursor=cursor)

    def get_key(self, key_id: str) -> ApiKey:
        return self.runtime.keys.get(self.org_id, key_id)

    def rotate_key(self, key_id: str, *, grace_seconds: float = 0) -> tuple[ApiKey, str]:
        return self.runtime.keys.rotate(
            self.org_id, key_id, grace_seconds=grace_seconds, actor=_actor()
        )

    def revoke_key(self, key_id: str) -> ApiKey:
        return self.runtime.keys.revoke(self.org_id, key_id, actor=_actor())

    def audit_tail(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        return self.runtime.audit.tail(self.org_id, after=after, limit=limit)

    def audit_export(self, *, format: str = "jsonl", since: str | None = None) -> Iterator[str]:
        # The format is checked on call (before the first line), as the server does.
        return _lines(self.runtime.audit.export(self.org_id, format, since=since))

    def audit_verify(self) -> VerifyReport:
        return self.runtime.audit.verify(self.org_id)

    def migrate(self) -> list[MigrationState]:
        from agent_sdk.store import store_from_settings

        if self._runtime is not None:
            return self._runtime.migrate()
        store = store_from_settings(self.settings)
        try:
            return store.migrate()
        finally:
            store.close()

    def migration_status(self) -> list[MigrationState]:
        from agent_sdk.store import store_from_settings

        if self._runtime is not None:
            return self._runtime.migration_status()
        store = store_from_settings(self.settings)
        try:
            return store.migration_status()
        finally:
            store.close()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close(wait=True)
            self._runtime = None


def _lines(records: Iterator[str]) -> Iterator[str]:
    """One line (ending in "\\n") at a time, as the HTTP backend reads them off the wire: a CSV
    record whose text holds a newline spans several."""
    for record in records:
        start = 0
        while (end := record.find("\n", start) + 1) and end < len(record):
            yield record[start:end]
            start = end
        yield record[start:]
