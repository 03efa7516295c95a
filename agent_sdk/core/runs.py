"""Runs: create, list, show, cancel, and read their events (a page, a live stream, a replay).

Execution is handed to an :class:`~agent_sdk.core.executor.Executor`; this module only decides
what a run is and which transitions it may take:

    queued ──► running ──► succeeded | failed | cancelled | dead
       │ ▲                                 │
       │ └──────── retry (an operator) ◄───┘ (failed, dead, cancelled)
       └──────────────────────────────────► cancelled

Creation takes an optional Idempotency-Key (draft-ietf-httpapi-idempotency-key-header). The key
is claimed in the transaction that inserts the run, its ``run.created`` event and its audit
record, so any number of concurrent requests with one key create one run. A request that finds
the key held by the same request gets the first answer back (the run as it was created), writes
nothing and is not audited again: nothing changed, and the first record carries the key. The
same key with another request is InvalidInput (422); a claim still in flight is Conflict (409),
which a single-transaction store never shows (see :mod:`agent_sdk.store.idempotency`).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.core.jobs import enqueue_run
from agent_sdk.core.run_requests import (
    MAX_INPUT_CHARS,
    check_storable,
    later,
    parse_statuses,
    replay,
    request_hash,
    valid_client_id,
)
from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict, InvalidInput, NotFound
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Deletion, Event, EventType, Page, Run, RunStatus
from agent_sdk.records.runs import check_idempotency_key
from agent_sdk.store.idempotency import DONE, IdempotencyRecord
from agent_sdk.times import resolve_since

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.deletion import Erasure
    from agent_sdk.core.events import EventBus
    from agent_sdk.core.executor import Executor
    from agent_sdk.core.retention import RetentionService
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.governance.redact import Redactor
    from agent_sdk.queue.base import Queue
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """A run creation checked and built by :meth:`RunService.prepare`, not yet written."""

    run: Run  # to write; or, when ``replayed``, the run an earlier request with the key created
    replayed: bool
    actor: Actor | None
    details: dict[str, Any]  # of its audit record
    claim: IdempotencyRecord | None = None  # its idempotency key's claim, born done
    digest: str = ""  # of the request, to match an earlier claim


# What a written admission gives: (run, replayed), or the error that refused it.
Admitted = tuple[Run, bool] | AgentSDKError

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
# What an operator's retry takes back to queued.
RETRYABLE = (RunStatus.FAILED, RunStatus.DEAD, RunStatus.CANCELLED)
# How often a live reader re-checks the store for events written by another process, when the
# store cannot tell it (SQLite: no notification crosses processes) or its listener is down.
POLL_INTERVAL = 0.25
# The same while the store pushes other processes' events (Postgres LISTEN/NOTIFY): only a
# safety net, since a lost listener connection wakes every reader as soon as it is noticed.
PUSHED_POLL_INTERVAL = 10.0
# Expired claims removed by each run creation that claims a key: more than it adds, so the table
# drains to the live keys, yet bounded, so one creation never pays for a long backlog.
PURGE_BATCH = 16


class RunService:
    """Every dependency but the settings and the store comes as a zero-argument callable: the
    runtime builds the engine side (bus, registry, executor) and the queue on first use, so a
    read-only call pays for neither, and the sibling services are built on first use too."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        audit: Callable[[], AuditService],
        retention: Callable[[], RetentionService],
        erasure: Callable[[], Erasure],
        bus: Callable[[], EventBus],
        registry: Callable[[], AgentRegistry],
        executor: Callable[[], Executor],
        queue: Callable[[], Queue],
    ) -> None:
        self.settings = settings
        self.store = store
        self._audit_service = audit
        self._retention = retention
        self._erasure = erasure
        self._bus = bus
        self._registry = registry
        self._executor = executor
        self._queue = queue

    @property
    def bus(self) -> EventBus:
        return self._bus()

    @property
    def registry(self) -> AgentRegistry:
        return self._registry()

    @property
    def executor(self) -> Executor:
        return self._executor()

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
        idempotency_key: str | None = None,
    ) -> Run:
        """A new queued run (or, with an ``idempotency_key`` used before by the same request,
        the run that request created: see :meth:`create_idempotent`)."""
        run, _ = self.create_idempotent(
            org_id,
            agent,
            input,
            session_id=session_id,
            metadata=metadata,
            script=script,
            actor=actor,
            idempotency_key=idempotency_key,
        )
        return run

    def create_idempotent(
        self,
        org_id: str,
        agent: str | dict[str, Any],
        input: str,
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        actor: Actor | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Run, bool]:
        """Create a run; return it and whether it is a replay of an earlier creation.

        With ``idempotency_key``: a live claim of the key in ``org_id`` for the same request
        (agent, input, session_id, metadata, script) returns the run as first created and True,
        creating nothing; for another request, InvalidInput; still in flight, Conflict.
        """
        admission = self.prepare(
            org_id,
            agent,
            input,
            session_id=session_id,
            metadata=metadata,
            script=script,
            actor=actor,
            idempotency_key=idempotency_key,
        )
        if admission.replayed:
            return admission.run, True
        (result,) = self.admit([admission])
        if isinstance(result, AgentSDKError):
            raise result
        return result

    def prepare(
        self,
        org_id: str,
        agent: str | dict[str, Any],
        input: str,
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        actor: Actor | None = None,
        idempotency_key: str | None = None,
    ) -> Admission:
        """Check a creation and build its run, writing nothing: the first half of
        :meth:`create_idempotent`, which :meth:`admit` completes. Its reads (an idempotency key
        already done, the org's redaction policy) take no write lock."""
        if not isinstance(input, str):
            raise InvalidInput("input must be a string")
        check_storable(
            input=input, agent=agent, session_id=session_id, metadata=metadata, script=script
        )
        if len(input) > MAX_INPUT_CHARS:
            raise InvalidInput(f"input is longer than {MAX_INPUT_CHARS} characters")
        if session_id is not None and not valid_client_id(session_id):
            raise InvalidInput(
                "session_id must be 1-128 characters of letters, digits, '-', '_' or '.'"
            )
        digest = ""
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            digest = request_hash(agent, input, session_id, metadata, script)
            # A retry usually finds its key done: answer it from one read, without the write
            # lock. A miss is settled again by the claim in admit(), under the lock.
            held = self.store.get_idempotency_key(org_id, idempotency_key, now=utcnow())
            if held is not None:
                return Admission(replay(held, digest), True, actor, {})
        try:  # validates names and inline specs up front
            resolved = self.registry.resolve(agent)
        except NotFound as exc:  # an unknown agent is a bad request, not a missing resource
            raise InvalidInput(exc.message, hint=exc.hint) from None
        spec = resolved.to_spec()
        # A named agent is looked up again by name when the run executes (a Python agent's
        # model object or tools do not survive a spec); an inline spec is rebuilt from itself.
        spec["registered"] = isinstance(agent, str)
        if script is not None:
            from agent_sdk.engine.models.scripted import validate_script

            spec["script"] = validate_script(script)
        if (clean := self._redactor(org_id)) is not None:
            # PII redaction: the request is stored, and so seen by the model, redacted. The
            # idempotency digest above is of the request as sent, so a retry still matches it.
            input, metadata = clean.redact(input), clean.redact_value(metadata)
            # So is what the request wrote of the agent: a script, an inline spec's texts (a
            # registered agent's own definition is the deployment's code, not request data).
            inline = not isinstance(agent, str)
            for key in ("script", "instructions"):
                if spec.get(key) is not None and (inline or (key == "script" and script)):
                    spec[key] = clean.redact_value(spec[key])
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
        details: dict[str, Any] = {"agent": run.agent}
        claim = None
        if idempotency_key is not None:
            # The claim carries the answer (the run as created), so it is born done and commits
            # with the run or not at all.
            claim = IdempotencyRecord(
                org_id=org_id,
                key=idempotency_key,
                request_hash=digest,
                state=DONE,
                created_at=now,
                expires_at=later(now, self.settings.server.idempotency_ttl),
                run_id=run.id,
                response=run.to_dict(),
            )
            details["idempotency_key"] = idempotency_key
        return Admission(run, False, actor, details, claim, digest)

    def admit(self, admissions: Sequence[Admission]) -> builtins.list[Admitted]:
        """Write prepared creations (none of them a replay) and dispatch their runs: see
        :meth:`write` and :meth:`announce`."""
        results, created = self.write(admissions)
        self.announce(created)
        return results

    def write(
        self, admissions: Sequence[Admission]
    ) -> tuple[builtins.list[Admitted], builtins.list[tuple[Run, Event]]]:
        """Write prepared creations (none of them a replay). Returns one result per admission,
        in order (the run and whether it replays an earlier creation, or the error that refused
        it), and the runs written with their ``run.created`` events, for :meth:`announce`.

        Several admissions share one transaction (group commit: one write lock and one commit
        for all). Each run's row, ``run.created`` event, audit record and idempotency claim
        still commit together, since the group commits whole or not at all. A request refused
        by its claim writes nothing and leaves the others alone; a store outage refuses
        them all; any other failure rolls the group back and writes each admission again on
        its own, so it costs only its own request."""
        try:
            with self.store.transaction():
                written = self._write(admissions)
        except AgentSDKError as exc:
            if len(admissions) == 1 or isinstance(exc, BackendUnavailable):
                # An outage refuses every member alike: writing each alone would only wait out
                # the store's timeout once per member, on the loop that serves every request.
                return [exc] * len(admissions), []
            results: builtins.list[Admitted] = []
            created: builtins.list[tuple[Run, Event]] = []
            for a in admissions:
                (result,), events = self.write([a])
                results.append(result)
                created += events
            return results, created
        results, created = [], []
        for item in written:
            if isinstance(item, tuple):
                results.append((item[0], False))
                created.append(item)
            else:
                results.append(item if isinstance(item, AgentSDKError) else (item, True))
        return results, created

    def announce(self, created: Sequence[tuple[Run, Event]]) -> None:
        """After the commit: tell live readers, and execute or enqueue each run created. A run
        whose dispatch fails or never happens stays ``queued`` for recovery (see _dispatch)."""
        for run, event in created:
            self.bus.publish(event)
            self._dispatch(run.org_id, run.id)

    def _write(
        self, admissions: Sequence[Admission]
    ) -> builtins.list[tuple[Run, Event] | Run | AgentSDKError]:
        """Inside the admission transaction, per admission: the run written with its
        ``run.created`` event; or, its idempotency key being held, the earlier request's run
        (same request) or the error (another request), with nothing written."""
        for org_id in dict.fromkeys(a.run.org_id for a in admissions):
            self.store.get_org(org_id)  # a deleted org takes no new run
        # Every claim first: a loser writes nothing, and nothing else is written before a
        # claim can refuse its request.
        out: builtins.list[tuple[Run, Event] | Run | AgentSDKError | None] = []
        for a in admissions:
            held = self.store.claim_idempotency_key(a.claim) if a.claim is not None else None
            try:  # another request won the race while this one was prepared
                out.append(None if held is None else replay(held, a.digest))
            except AgentSDKError as exc:
                out.append(exc)
        for i, a in enumerate(admissions):
            if out[i] is not None:
                continue
            run = self.store.insert_run(a.run)
            event = self.store.append_event(
                run.org_id, run.id, EventType.RUN_CREATED, {"agent": run.agent}, time=run.created_at
            )
            self._audit(run.org_id, a.actor, "runs.create", run.id, a.details)
            out[i] = (run, event)
        if any(a.claim is not None for a in admissions):
            self.store.purge_idempotency_keys(utcnow(), limit=PURGE_BATCH)
        return [r for r in out if r is not None]

    def _dispatch(self, org_id: str, run_id: str) -> None:
        """Inline: execute here. Queue mode: enqueue for a worker. The run is committed first;
        if the enqueue fails (or this process dies before it), the run stays ``queued`` and
        recovery gives it its job (see :mod:`agent_sdk.core.recovery`): accepted is never lost."""
        if self.settings.execution.mode != "queue":
            self.executor.submit(org_id, run_id)
            return
        try:
            enqueue_run(self._queue(), org_id, run_id)
        except AgentSDKError as exc:
            log.warning(
                "run %s accepted but not enqueued (%s); a recovery sweep will enqueue it",
                run_id,
                exc,
            )

    def _audit(
        self, org_id: str, actor: Actor | None, action: str, run_id: str, details: dict[str, Any]
    ) -> None:
        audit_action(self._audit_service(), org_id, actor, action, run_id, details=details)

    def _clean(self, org_id: str, text: str) -> str:
        clean = self._redactor(org_id)
        return text if clean is None else clean.redact(text)

    def _redactor(self, org_id: str) -> Redactor | None:
        """PII redaction of what this service stores (None when off): see core/redaction.py."""
        if not self.settings.pii_redaction_enabled:
            return None
        from agent_sdk.core.redaction import org_redactor

        return org_redactor(self.settings, self.store, org_id)

    def _visible(self, org_id: str, run_id: str) -> Run:
        """The run, or NotFound when it does not exist or its org's retention policy has
        expired it (see :mod:`agent_sdk.core.retention`)."""
        return self._retention().visible_run(self.store.get_run(org_id, run_id))

    def cancel(self, org_id: str, run_id: str, *, actor: Actor | None = None) -> Run:
        run = self._visible(org_id, run_id)
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

    def retry(self, org_id: str, run_id: str, *, actor: Actor | None = None) -> Run:
        """An operator's retry: a ``failed``, ``dead`` or ``cancelled`` run is ``queued`` again
        and dispatched like a new run. Its attempts are kept (the next attempt resumes from the
        journal of the earlier ones); its error, finish time and cancel request are cleared.
        Conflict for a run that succeeded or has not finished."""
        with self.store.transaction():
            run = self._visible(org_id, run_id)
            if run.status not in RETRYABLE:
                raise Conflict(
                    f"run {run_id} is {run.status.value}; only a failed, dead or cancelled run "
                    "can be retried",
                    hint="start a new run instead"
                    if run.status is RunStatus.SUCCEEDED
                    else "wait for it to finish, or cancel it first",
                )
            back = self.store.update_run(
                org_id,
                run_id,
                expect_status=[run.status],
                status=RunStatus.QUEUED,
                error=None,
                finished_at=None,
                cancel_requested=False,
            )
            if back is None:  # the store is locked for writes here, so only a racing retry
                raise Conflict(f"run {run_id} changed while being retried", hint="try again")
            who = actor.subject if actor is not None else "an operator"
            event = self.store.append_event(
                org_id,
                run_id,
                EventType.RUN_RETRYING,
                {
                    "attempt": back.attempts,
                    "error": self._clean(org_id, f"retried by {who}"),
                    "delay": 0,
                },
            )
            self._audit(org_id, actor, "runs.retry", run_id, {"was": run.status.value})
        self.bus.publish(event)
        if self.settings.execution.mode == "queue":
            # A dead run's job sits dead-lettered under the run's id, where an enqueue would
            # find it and leave it: bring that job back instead.
            try:
                self._queue().requeue_dead(run_id)
            except (NotFound, Conflict):
                pass  # no job (acknowledged) or a live one: the enqueue below settles it
            except AgentSDKError as exc:
                log.warning("could not requeue the dead job of run %s (%s)", run_id, exc)
        self._dispatch(org_id, run_id)
        return back

    def retry_many(
        self,
        org_id: str,
        *,
        status: Sequence[str],
        since: str | None = None,
        actor: Actor | None = None,
        limit: int = 1000,
    ) -> builtins.list[Run]:
        """Retry up to ``limit`` runs in ``status`` (failed, dead and/or cancelled) created at
        or after ``since`` (an ISO time, or an age such as ``30m``, ``1h``, ``2d``; None: any
        time), newest first. A run that changed meanwhile (someone else retried it) is
        skipped."""
        after = resolve_since(since) if since is not None else None
        statuses = parse_statuses(status)
        if not statuses:
            raise InvalidInput("which runs? give at least one status to retry")
        wrong = [s.value for s in statuses if s not in RETRYABLE]
        if wrong:
            raise InvalidInput(
                f"runs that are {', '.join(wrong)} cannot be retried",
                hint="retry failed, dead or cancelled runs",
            )
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, not {limit}")
        # Collect first, then retry: a retried run leaves these statuses, and paging while the
        # pages change under the cursor is what the keyset avoids anyway.
        ids: builtins.list[str] = []
        cursor: str | None = None
        while len(ids) < limit:
            page = self.store.list_runs(
                org_id,
                status=statuses,
                expiry=self._retention().run_expiry(org_id),
                created_after=after,
                limit=min(500, limit - len(ids)),
                cursor=cursor,
            )
            ids += [r.id for r in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        done: builtins.list[Run] = []
        for run_id in ids:
            try:
                done.append(self.retry(org_id, run_id, actor=actor))
            except Conflict:
                continue
        return done

    def delete(self, org_id: str, run_id: str, *, actor: Actor | None = None) -> Deletion:
        """Erase the run with its events and everything keyed by it, in any status (a running
        attempt stops at its next write); audited as ``runs.delete``. See
        :mod:`agent_sdk.core.deletion`."""
        return self._erasure().delete_run(org_id, run_id, get=self.get, actor=actor)

    # -- queries ----------------------------------------------------------------------------
    def get(self, org_id: str, run_id: str) -> Run:
        return self._visible(org_id, run_id)

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
            expiry=self._retention().run_expiry(org_id),
        )

    def events(
        self, org_id: str, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> builtins.list[Event]:
        if after < 0:
            raise InvalidInput("after must be >= 0")
        retention = self._retention()
        if retention.cutoffs(org_id) is not None:  # no extra read for orgs without a policy
            after = retention.events_after(self._visible(org_id, run_id), after)
        return self.store.list_events(org_id, run_id, after=after, limit=limit)

    async def stream(
        self, org_id: str, run_id: str, *, after: int = 0
    ) -> AsyncGenerator[Event, None]:
        """Every event after ``after``, live, ending with the run's terminal event.

        Subscribes before reading the store, so nothing published in between is missed; events
        already read are skipped by ``seq``. A gap, an overflowed buffer or a wake-up (another
        process wrote, see :meth:`EventBus.wake`) sends the reader back to the store, which is
        also re-read every POLL_INTERVAL for writers in other processes, or every
        PUSHED_POLL_INTERVAL while the store announces their writes.
        """
        import asyncio

        after = self._retention().events_after(self._visible(org_id, run_id), after)
        bus = self.bus
        sub = bus.subscribe(run_id)
        waiting = True  # nothing yielded yet: the resume point may lie at or past the end
        try:
            while True:
                # Drop what is buffered, then read, with no await in between: everything
                # dropped was committed before the read, so the read has it, and whatever is
                # published during the read (or while the page is yielded) stays buffered.
                sub.drain()
                try:
                    page = self.store.list_events(org_id, run_id, after=after, limit=1000)
                    # Once an event went out, the terminal one comes after it and ends the
                    # stream; before that, a finished run may have nothing left to send.
                    if not page and waiting and self.ended_by(org_id, run_id, after):
                        return
                except NotFound:
                    return  # deleted while followed: the stream ends (a resume gets 404)
                waiting = waiting and not page
                for event in page:
                    yield event
                    after = event.seq
                    if event is page[-1] and self.ends_stream(org_id, run_id, event):
                        return
                if len(page) == 1000:
                    continue
                while True:
                    wait = PUSHED_POLL_INTERVAL if bus.pushed else POLL_INTERVAL
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that
                    # lands as the queue hands over an item, and the follower then never stops.
                    try:
                        async with asyncio.timeout(wait):
                            item = await sub.queue.get()
                    except TimeoutError:
                        break
                    if item is None or sub.lagged or item.seq > after + 1:
                        break
                    if item.seq <= after:
                        if waiting and item.terminal:
                            break  # the run ended behind a resume point past its end
                        continue
                    yield item
                    after, waiting = item.seq, False
                    if self.ends_stream(org_id, run_id, item):
                        return
        finally:
            self.bus.unsubscribe(sub)

    def ended_by(self, org_id: str, run_id: str, after: int) -> bool:
        """Whether the run has ended at or before event ``after``: a follower resuming there
        (``Last-Event-ID`` of the terminal event, or past it) has nothing left to wait for.
        The status is read before the events: a run's end and its terminal event are committed
        together, so a finished status read first means the read that follows has the event."""
        if not self._visible(org_id, run_id).status.terminal:
            return False
        return not self.events(org_id, run_id, after=after, limit=1)

    def ends_stream(self, org_id: str, run_id: str, event: Event) -> bool:
        """Whether a follower stops at ``event``: a terminal event that is still the run's
        latest. A retried run has a terminal event followed by ``run.retrying``, and its
        followers go on to the end of the new attempt."""
        if not event.terminal:
            return False
        try:
            return not self.store.list_events(org_id, run_id, after=event.seq, limit=1)
        except NotFound:
            return True  # deleted meanwhile: nothing follows

    async def replay(
        self, org_id: str, run_id: str, *, after: int = 0, speed: float = 0.0
    ) -> AsyncIterator[Event]:
        """The stored events of a run, as recorded. With ``speed`` > 0 the original gaps between
        events are reproduced, divided by ``speed``; with 0 they stream as fast as possible."""
        import asyncio
        from datetime import datetime

        after = self._retention().events_after(self._visible(org_id, run_id), after)
        previous: datetime | None = None
        for event in self.store.iter_events(org_id, run_id, after=after):
            if speed > 0:
                at = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
                if previous is not None:
                    await asyncio.sleep(max(0.0, (at - previous).total_seconds() / speed))
                previous = at
            yield event
