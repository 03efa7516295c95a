"""Runs: create, list, show, cancel, and read their events (a page, a live stream, a replay).

Execution is handed to an :class:`~agent_sdk.core.executor.Executor`; this module only decides
what a run is and which transitions it may take:

    queued ──► running ──► succeeded | failed | cancelled
       └──────────────────────────────────► cancelled
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.records import Event, EventType, Page, Run, RunStatus
from agent_sdk.store._ids import new_id, utcnow

if TYPE_CHECKING:
    from agent_sdk.core.events import EventBus
    from agent_sdk.core.executor import Executor
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.engine.agent import AgentRegistry

MAX_INPUT_CHARS = 1_000_000
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
# How often a live reader re-checks the store for events written by another process.
POLL_INTERVAL = 0.25


def parse_statuses(values: Sequence[str] | None) -> list[RunStatus] | None:
    if not values:
        return None
    out = []
    for v in values:
        for part in v.split(","):
            try:
                out.append(RunStatus(part.strip().lower()))
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                raise InvalidInput(
                    f"unknown run status {part!r}", hint=f"use one of: {known}"
                ) from None
    return out


class RunService:
    def __init__(self, runtime: Runtime) -> None:
        self.settings = runtime.settings
        self.store = runtime.store
        self._runtime = runtime

    # The engine side is reached through the runtime, which builds it on first use.
    @property
    def bus(self) -> EventBus:
        return self._runtime.bus

    @property
    def registry(self) -> AgentRegistry:
        return self._runtime.registry

    @property
    def executor(self) -> Executor:
        return self._runtime.executor

    # -- commands ---------------------------------------------------------------------------
    def create(
        self,
        org_id: str,
        agent: str | dict[str, Any],
        input: str,
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        actor: Actor | None = None,
    ) -> Run:
        if not isinstance(input, str):
            raise InvalidInput("input must be a string")
        if len(input) > MAX_INPUT_CHARS:
            raise InvalidInput(f"input is longer than {MAX_INPUT_CHARS} characters")
        if session_id is not None and not _valid_client_id(session_id):
            raise InvalidInput(
                "session_id must be 1-128 characters of letters, digits, '-', '_' or '.'"
            )
        try:  # validates names and inline specs up front
            resolved = self.registry.resolve(agent)
        except NotFound as exc:  # an unknown agent is a bad request, not a missing resource
            raise InvalidInput(exc.message, hint=exc.hint) from None
        spec = resolved.to_spec()
        if script is not None:
            from agent_sdk.engine.models.scripted import validate_script

            spec["script"] = validate_script(script)
        now = utcnow()
        run = Run(
            id=new_id("run"),
            org_id=org_id,
            agent=resolved.name,
            status=RunStatus.QUEUED,
            input=input,
            created_at=now,
            updated_at=now,
            session_id=session_id,
            metadata=dict(metadata or {}),
            agent_spec=spec,
        )
        with self.store.transaction():
            self.store.get_org(org_id)
            run = self.store.insert_run(run)
            event = self.store.append_event(
                org_id, run.id, EventType.RUN_CREATED, {"agent": run.agent}, time=now
            )
            self._audit(org_id, actor, "runs.create", run.id, {"agent": run.agent})
        self.bus.publish(event)
        self.executor.submit(org_id, run.id)
        return run

    def _audit(
        self, org_id: str, actor: Actor | None, action: str, run_id: str, details: dict[str, Any]
    ) -> None:
        audit_action(self._runtime.audit, org_id, actor, action, run_id, details=details)

    def cancel(self, org_id: str, run_id: str, *, actor: Actor | None = None) -> Run:
        run = self.store.get_run(org_id, run_id)
        if run.status.terminal:
            return run
        # A queued run is cancelled on the spot; the executor's queued->running
        # compare-and-set then finds nothing to start.
        with self.store.transaction():
            done = self.store.update_run(
                org_id,
                run_id,
                expect_status=[RunStatus.QUEUED],
                status=RunStatus.CANCELLED,
                cancel_requested=True,
                finished_at=utcnow(),
                error={"code": "cancelled", "message": "cancelled before it started"},
            )
            if done is not None:
                event = self.store.append_event(
                    org_id, run_id, EventType.RUN_CANCELLED, {"reason": "cancelled by request"}
                )
                self._audit(org_id, actor, "runs.cancel", run_id, {"was": "queued"})
        if done is not None:
            self.bus.publish(event)
            return done
        # Running: record the request (a process elsewhere sees it at its next step) and stop
        # the task at once if it runs here.
        with self.store.transaction():
            updated = self.store.update_run(
                org_id, run_id, expect_status=[RunStatus.RUNNING], cancel_requested=True
            )
            self._audit(org_id, actor, "runs.cancel", run_id, {"was": "running"})
        self.executor.cancel(run_id)
        return updated or self.store.get_run(org_id, run_id)

    # -- queries ----------------------------------------------------------------------------
    def get(self, org_id: str, run_id: str) -> Run:
        return self.store.get_run(org_id, run_id)

    def list(
        self,
        org_id: str,
        *,
        status: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]:
        return self.store.list_runs(
            org_id,
            status=parse_statuses(status),
            session_id=session_id,
            limit=limit,
            cursor=cursor,
        )

    def events(
        self, org_id: str, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> builtins.list[Event]:
        if after < 0:
            raise InvalidInput("after must be >= 0")
        return self.store.list_events(org_id, run_id, after=after, limit=limit)

    async def stream(
        self, org_id: str, run_id: str, *, after: int = 0
    ) -> AsyncGenerator[Event, None]:
        """Every event after ``after``, live, ending with the run's terminal event.

        Subscribes before reading the store, so nothing published in between is missed; events
        already read are skipped by ``seq``. A gap or an overflowed buffer sends the reader back
        to the store, which is also re-read every POLL_INTERVAL for writers in other processes.
        """
        import asyncio

        self.store.get_run(org_id, run_id)
        sub = self.bus.subscribe(run_id)
        try:
            while True:
                page = self.store.list_events(org_id, run_id, after=after, limit=1000)
                for event in page:
                    yield event
                    after = event.seq
                    if event.terminal:
                        return
                if len(page) == 1000:
                    continue
                sub.drain()
                while True:
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), POLL_INTERVAL)
                    except TimeoutError:
                        break
                    if sub.lagged or event.seq > after + 1:
                        break
                    if event.seq <= after:
                        continue
                    yield event
                    after = event.seq
                    if event.terminal:
                        return
        finally:
            self.bus.unsubscribe(sub)

    async def replay(
        self, org_id: str, run_id: str, *, after: int = 0, speed: float = 0.0
    ) -> AsyncIterator[Event]:
        """The stored events of a run, as recorded. With ``speed`` > 0 the original gaps between
        events are reproduced, divided by ``speed``; with 0 they stream as fast as possible."""
        import asyncio
        from datetime import datetime

        self.store.get_run(org_id, run_id)
        previous: datetime | None = None
        for event in self.store.iter_events(org_id, run_id, after=after):
            if speed > 0:
                at = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
                if previous is not None:
                    await asyncio.sleep(max(0.0, (at - previous).total_seconds() / speed))
                previous = at
            yield event


def _valid_client_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "-_." for c in value)
