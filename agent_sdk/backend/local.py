"""In-process backend on the local store. Runs it creates execute in this process, on the
runtime's engine thread; :meth:`close` waits for them, so a CLI call never leaves a run behind
in ``running``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.records import Event, MigrationState, Page, Run, Session

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.runtime import Runtime


class LocalBackend:
    kind = "local"

    def __init__(self, settings: Settings, *, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.org_id = settings.org_id
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
    ) -> Run:
        return self.runtime.runs.create(
            self.org_id, agent, input, session_id=session_id, metadata=metadata, script=script
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
        return self.runtime.runs.cancel(self.org_id, run_id)

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
