"""In-process backend on the local store. Runs it creates execute in this process, on the
runtime's engine thread; :meth:`close` waits for them, so a CLI call never leaves a run behind
in ``running``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: a call loads the records it returns
    from agent_sdk.config import Settings
    from agent_sdk.core.actors import Actor
    from agent_sdk.core.runtime import Runtime
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
        self.org_id = settings.client.org_id or DEFAULT_ORG
        self._runtime = runtime
        self._admitted = False

    @property
    def runtime(self) -> Runtime:
        """The runtime, once the org is known to be served here: with AGENT_SDK_DATA_REGION
        the local CLI refuses an org of another region (WrongRegion) as a server would."""
        runtime = self._open()
        if not self._admitted:
            runtime.residency.check(self.org_id)
            self._admitted = True
        return runtime

    def _open(self) -> Runtime:
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

    def delete_run(self, run_id: str) -> Deletion:
        return self.runtime.runs.delete(self.org_id, run_id, actor=_actor())

    def delete_session(self, session_id: str) -> Deletion:
        return self.runtime.sessions.delete(self.org_id, session_id, actor=_actor())

    # -- access control ---------------------------------------------------------------------------
    def whoami(self) -> Principal:
        from agent_sdk.core.actors import local_principal

        _ = self.runtime  # the org must exist, as on a server
        return local_principal(self.org_id)

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
        # The same delegation rule as the server, for the local operator's principal (which holds
        # every scope, so it refuses nothing here: see core.actors.local_principal).
        return self.runtime.keys.create_as(
            self.whoami(),
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
        return self.runtime.keys.rotate_as(
            self.whoami(), self.org_id, key_id, grace_seconds=grace_seconds, actor=_actor()
        )

    def revoke_key(self, key_id: str) -> ApiKey:
        return self.runtime.keys.revoke_as(self.whoami(), self.org_id, key_id, actor=_actor())

    def audit_tail(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        return self.runtime.audit.tail(self.org_id, after=after, limit=limit)

    def audit_export(self, *, format: str = "jsonl", since: str | None = None) -> Iterator[str]:
        # The format is checked on call (before the first line), as the server does.
        return _lines(self.runtime.audit.export(self.org_id, format, since=since))

    def audit_verify(
        self,
        *,
        anchor: Sequence[Checkpoint] | None = None,
        public_key: str | None = None,
    ) -> VerifyReport:
        return self.runtime.audit.verify(self.org_id, public_key=public_key, anchor=anchor)

    def audit_checkpoints(self, *, after: int = 0) -> Iterator[Checkpoint]:
        return self.runtime.audit.checkpoints(self.org_id, after=after)

    # The residency methods skip the region check, like their HTTP routes: the region of an org
    # served elsewhere can still be read, and fixed.
    def get_residency(self) -> Residency:
        return self._open().residency.show(self.org_id)

    def set_residency(self, region: str | None) -> Residency:
        return self._open().residency.set(self.org_id, region, actor=_actor())

    def list_encryption_keys(self) -> list[EncryptionKey]:
        return self.runtime.encryption.list(self.org_id)

    def rotate_encryption_key(self) -> EncryptionKey:
        return self.runtime.encryption.rotate(self.org_id, actor=_actor())

    def destroy_encryption_keys(self) -> list[EncryptionKey]:
        return self.runtime.encryption.destroy(self.org_id, actor=_actor())

    def rewrap_encryption(self, *, limit: int = 500, cursor: str | None = None) -> RewrapReport:
        return self.runtime.encryption.rewrap(
            self.org_id, limit=limit, cursor=cursor, actor=_actor()
        )

    def get_retention(self) -> RetentionView:
        return self.runtime.retention.show(self.org_id)

    def set_retention(self, policy: Mapping[str, int | None]) -> RetentionView:
        return self.runtime.retention.set(self.org_id, policy, actor=_actor())

    def clear_retention(self) -> RetentionView:
        return self.runtime.retention.clear(self.org_id, actor=_actor())

    def retention_sweep(
        self, *, all_orgs: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> SweepReport:
        # Every org: the sweeper itself skips the orgs of other regions, so the backend's own
        # org need not be served here.
        runtime = self._open() if all_orgs else self.runtime
        return runtime.retention.sweep(
            None if all_orgs else self.org_id, dry_run=dry_run, actor=_actor(), progress=progress
        )

    def get_redaction(self) -> RedactionView:
        return self.runtime.redaction.show(self.org_id)

    def set_redaction(self, policy: Mapping[str, Any]) -> RedactionView:
        return self.runtime.redaction.replace(self.org_id, dict(policy), actor=_actor())

    def reset_redaction(self) -> RedactionView:
        return self.runtime.redaction.reset(self.org_id, actor=_actor())

    def set_redaction_pattern(
        self, name: str, regex: str, placeholder: str | None = None
    ) -> RedactionView:
        return self.runtime.redaction.set_pattern(
            self.org_id, name, regex, placeholder, actor=_actor()
        )

    def delete_redaction_pattern(self, name: str) -> RedactionView:
        return self.runtime.redaction.delete_pattern(self.org_id, name, actor=_actor())

    def preview_redaction(self, text: str) -> Preview:
        return self.runtime.redaction.preview(self.org_id, text)

    def migrate(self) -> list[MigrationState]:
        if self._runtime is not None:
            return self._runtime.migrate()
        from agent_sdk.core import bootstrap

        return bootstrap.migrate(self.settings)

    def migration_status(self) -> list[MigrationState]:
        if self._runtime is not None:
            return self._runtime.migration_status()
        from agent_sdk.core import bootstrap

        return bootstrap.migration_status(self.settings)

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close(wait=True)
            self._runtime = None
            self._admitted = False


def _lines(records: Iterator[str]) -> Iterator[str]:
    """One line (ending in "\\n") at a time, as the HTTP backend reads them off the wire: a CSV
    record whose text holds a newline spans several."""
    for record in records:
        start = 0
        while (end := record.find("\n", start) + 1) and end < len(record):
            yield record[start:end]
            start = end
        yield record[start:]
