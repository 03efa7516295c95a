"""One attempt of a run: start it, drive the engine, and record how it ended.

    queued ──start──► running ──► succeeded | failed | cancelled
      ▲                  │
      └── run.retrying ──┤ (a retryable error with retries left, or the worker stopping)
                         └──► dead (a retryable error on the last allowed attempt)

An attempt may also take over a run left ``running`` by a worker that died: it starts again
from the journal of what earlier attempts recorded (see :mod:`agent_sdk.engine.journal`), so
the run keeps one event history and nothing recorded happens twice.

Only one attempt of a run is alive at a time, whatever the queue delivers (queues without
unique job ids, SQS and Kafka, may deliver a run's job twice):

* a run whose heartbeat is fresher than one ``AGENT_SDK_WORKER_LEASE`` is not taken over: the
  attempt ends ``busy`` and its job comes back once the heartbeat would have gone stale;
* the attempt counter is a fencing token: every write of an attempt (its events, the journal
  they form, its heartbeat, retry and finish) applies only while the run's ``attempts`` is still
  its own, checked by the store in the statement or transaction that writes. An attempt that
  was taken over (it stalled for a whole lease, then woke up) gets Superseded from its next
  write, which comes before its next model or tool call, and stops without writing more.

The engine's events are written a step at a time: ``emit`` holds them back and the engine's
``flush``, called before each model request and each batch of tool calls, writes what is held
in one fenced transaction (:meth:`Store.append_events`), so nothing is called before the events
leading to the call are recorded. What is held at the end (a no-op run's model.response, a
last tool.result) is written in the transaction that records how the attempt ended, before its
terminal or run.retrying event. A no-op run thus costs three store transactions, not four.

Every attempt that started settles its job, whatever fails: the engine, an event write, the
journal, or recording the end itself (the store refused the output, or was down). A failure to
record the end is retried within ``AGENT_SDK_RETRY_MAX`` when the store was unavailable, and
otherwise ends the run ``failed`` with an error saying the result could not be stored. A run
whose allowed attempts all started without any of them recording an end (its workers died, or
the store refused every write) is not started again: it ends ``dead``, so a poison run cannot
take down worker after worker, nor be leased forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sdk.core.outcome import DELETED, DONE, LEASE_LOST, SKIPPED, STOPPING, Outcome
from agent_sdk.core.residency import refuse_attempt
from agent_sdk.core.retry import RetryPolicy, is_retryable
from agent_sdk.core.watch import Watch
from agent_sdk.errors import (
    AgentSDKError,
    BackendUnavailable,
    Conflict,
    EventCapExceeded,
    NotFound,
    Superseded,
)
from agent_sdk.ids import utcnow
from agent_sdk.records import EventType, Run, RunStatus, Usage

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.events import EventBus
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.governance.redact import Redactor
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

# Seconds between checks of the store for a cancel requested by another process at each step
# of the engine (at most this often); during long waits the process's watch looks for it
# (CANCEL_WATCH in core/watch.py).
CANCEL_POLL = 0.25

# Events an attempt emitted and has not written yet: (type, data), in order (see _drive).
Held = list[tuple[str, dict[str, Any]]]

_TERMINAL_EVENT = {
    RunStatus.SUCCEEDED: EventType.RUN_SUCCEEDED,
    RunStatus.FAILED: EventType.RUN_FAILED,
    RunStatus.DEAD: EventType.RUN_FAILED,
    RunStatus.CANCELLED: EventType.RUN_CANCELLED,
}


@dataclass
class Attempts:
    settings: Settings
    store: Store
    bus: EventBus
    registry: AgentRegistry

    def __post_init__(self) -> None:
        self.policy = RetryPolicy.from_settings(self.settings)
        # The heartbeat and cancel watcher of every attempt this process runs (core/watch.py).
        self.watch = Watch(self.store, self.settings.worker.lease)

    async def run(self, org_id: str, run_id: str, *, takeover: bool = False) -> Outcome:
        """One attempt. ``takeover`` also starts a run left ``running`` by a dead worker.

        A run erased before or during the attempt ends it ``skipped``, whatever step noticed
        (its start, an event write, the heartbeat, the final update): no row can come back, and
        the worker acknowledges the job instead of leasing it again."""
        try:
            outcome = await self._attempt(org_id, run_id, takeover)
        except NotFound:
            if not self._gone(org_id, run_id):
                return self._unsettled(run_id, NotFound(f"run {run_id!r} not found"))
            return SKIPPED
        except Exception as exc:  # it could not start, or could not record how it ended
            return self._unsettled(run_id, exc)
        if outcome.kind == "lost" and self._gone(org_id, run_id):
            return SKIPPED
        return outcome

    def _gone(self, org_id: str, run_id: str) -> bool:
        """Whether the run no longer exists (it was deleted)."""
        try:
            self.store.get_run(org_id, run_id)
        except NotFound:
            return True
        except AgentSDKError:
            return False  # the store is down: not known to be gone
        return False

    def _redactor(self, org_id: str) -> Redactor | None:
        """PII redaction of what this attempt writes (None when off): see core/redaction.py."""
        if not self.settings.pii_redaction_enabled:
            return None
        from agent_sdk.core.redaction import org_redactor

        return org_redactor(self.settings, self.store, org_id)

    async def _attempt(self, org_id: str, run_id: str, takeover: bool) -> Outcome:
        started = self._start(org_id, run_id, takeover=takeover)
        if isinstance(started, Outcome):
            return started
        run, resumed, seq = started
        attempt = run.attempts
        held: Held = []  # emitted, not yet written (see _drive)
        try:
            journal = self._journal(run) if resumed else None  # unreadable: the run fails
            drive = asyncio.ensure_future(self._drive(run, journal, held, seq))
            with self.watch.attempt((org_id, run_id, attempt), drive):
                result = await drive
        except asyncio.CancelledError as exc:
            why = exc.args[0] if exc.args else None
            if why in (LEASE_LOST, DELETED):
                return Outcome("lost")
            if why == STOPPING:
                return self._retry(org_id, run_id, attempt, 0.0, "the worker stopped", True, held)
            return self._end(
                org_id,
                run_id,
                attempt,
                RunStatus.CANCELLED,
                reason="cancelled by request",
                held=held,
            )
        except Superseded as exc:
            # Another attempt took the run over (or it ended) while this one was paused: its
            # write was refused, so it stops here; the holder of the run settles the job.
            log.warning("run %s: attempt %d stopped: %s", run_id, attempt, exc.message)
            return Outcome("lost")
        except AgentSDKError as exc:
            # A provider's error message is model output too: made storable like the rest.
            error = _storable_error(exc)
            if is_retryable(exc):
                if self.policy.allows(attempt):
                    delay = self.policy.delay(attempt)
                    return self._retry(org_id, run_id, attempt, delay, error["message"], held=held)
                return self._end(org_id, run_id, attempt, RunStatus.DEAD, error=error, held=held)
            return self._end(org_id, run_id, attempt, RunStatus.FAILED, error=error, held=held)
        except Exception:  # a bug must fail the run, not leave it running forever
            log.exception("run %s crashed", run_id)
            error = {"code": "internal_error", "message": "internal error (see logs)"}
            return self._end(org_id, run_id, attempt, RunStatus.FAILED, error=error, held=held)
        return self._end(
            org_id,
            run_id,
            attempt,
            RunStatus.SUCCEEDED,
            output=result.text,
            usage=result.usage,
            steps=result.steps,
            held=held,
        )

    def _ended(self, recorded: bool, org_id: str, run_id: str, attempt: int) -> Outcome:
        """DONE when this attempt recorded its end, or when the run ended without it (cancelled
        or finished elsewhere: the job is done); "lost" when another attempt took it over (its
        holder settles the job) or the run was deleted."""
        if recorded:
            return DONE
        try:
            current = self.store.get_run(org_id, run_id)
        except AgentSDKError:
            return Outcome("lost")
        return DONE if current.attempts == attempt else Outcome("lost")

    # -- start -------------------------------------------------------------------------------
    def _start(
        self, org_id: str, run_id: str, *, takeover: bool
    ) -> tuple[Run, bool, int] | Outcome:
        """The started run, whether it resumes earlier attempts and the seq of its run.started
        event, or why it did not start."""
        expect = [RunStatus.QUEUED, RunStatus.RUNNING] if takeover else [RunStatus.QUEUED]
        refusal = refuse_attempt(self.settings, self.store, org_id)  # AGENT_SDK_DATA_REGION
        if refusal is not None:
            return Outcome("elsewhere", error=refusal)
        with self.store.transaction():
            run = self.store.get_run(org_id, run_id)
            if run.status not in expect:
                return SKIPPED  # finished, cancelled while queued, or running elsewhere
            if run.status is RunStatus.RUNNING:
                alive_for = self._alive_for(run)
                if alive_for > 0:
                    return Outcome("busy", delay=alive_for, error="the run is running elsewhere")
            resumed = run.attempts > 0
            spent = resumed and self._spent(run)
            if not spent:
                started = self.store.update_run(
                    org_id,
                    run_id,
                    expect_status=[run.status],
                    expect_attempts=run.attempts,
                    status=RunStatus.RUNNING,
                    started_at=run.started_at or utcnow(),
                    attempts=run.attempts + 1,
                )
                if started is None:
                    return SKIPPED
                event = self.store.append_event(
                    org_id,
                    run_id,
                    EventType.RUN_STARTED,
                    {"attempt": started.attempts, "resumed": resumed},
                    attempt=started.attempts,
                )
        if spent or started is None:
            return self._give_up(run)
        self.bus.publish(event)
        return started, resumed, event.seq

    def _journal(self, run: Run) -> Any:
        from agent_sdk.engine.journal import Journal

        return Journal.from_events(self.store.iter_events(run.org_id, run.id))

    def _spent(self, run: Run) -> bool:
        """Whether every attempt the retry policy allows has started without recording how it
        ended. Attempts handed back by a stopping worker do not count (they did not fail), nor
        do those before an operator's retry (after the run's last terminal event). The events
        are read only once the counter alone says the attempts may be spent."""
        allowed = self.policy.max_retries + 1
        if run.attempts < allowed:
            return False
        failed = 0
        for event in self.store.iter_events(run.org_id, run.id):
            if event.type == EventType.RUN_STARTED:
                failed += 1
            elif event.type == EventType.RUN_RETRYING and event.data.get("handback"):
                failed -= 1
            elif event.type in _TERMINAL_EVENT.values():
                failed = 0
        return failed >= allowed

    def _give_up(self, run: Run) -> Outcome:
        """End a run whose attempts are spent ``dead``, instead of starting it once more."""
        message = (
            f"gave up after {run.attempts} attempts (AGENT_SDK_RETRY_MAX="
            f"{self.policy.max_retries}): no attempt recorded how the run ended, because its "
            "worker died or could not write to the store (see the workers' logs)"
        )
        log.error("run %s: %s", run.id, message)
        error = {"code": "retries_exhausted", "message": message}
        recorded = self.finish(
            run.org_id, run.id, RunStatus.DEAD, error=error, attempt=run.attempts
        )
        if recorded:
            return Outcome("dead", error=message)
        return self._ended(False, run.org_id, run.id, run.attempts)

    def _alive_for(self, run: Run) -> float:
        """Seconds until a running run's heartbeat goes stale (0: stale, take it over)."""
        from datetime import UTC, datetime

        from agent_sdk.ids import parse_time

        age = (datetime.now(UTC) - parse_time(run.updated_at)).total_seconds()
        return max(0.0, self.settings.worker.lease - age)

    async def _drive(self, run: Run, journal: Any, held: Held, seq: int) -> Any:
        """Execute the run. Emitted events wait in ``held`` until the engine's next flush (or
        the attempt's end); ``seq`` is the last seq written (the attempt's run.started)."""
        from agent_sdk.engine.runner import RunEnv, execute
        from agent_sdk.engine.tools import ToolContext

        org_id, run_id, attempt = run.org_id, run.id, run.attempts
        written = [seq]
        cap = self.settings.stream.max_events
        clean = self._redactor(org_id)

        def flush() -> None:
            if not held:
                return
            # Fenced: Superseded once another attempt holds the run, before any further call.
            try:
                events = self.store.append_events(org_id, run_id, held, attempt=attempt)
            except Exception as exc:
                if not is_retryable(exc):
                    # Refused for good (an event the store cannot hold): not offered again
                    # with the run's end, which then records this error, not a second refusal.
                    held.clear()
                raise
            held.clear()
            written[0] = events[-1].seq
            for ev in events:
                self.bus.publish(ev)

        def emit(type: str, data: dict[str, Any]) -> None:
            if clean is not None:  # model text, tool calls and results are stored redacted
                data = clean.redact_value(data)
            held.append((type, data))
            # Leave room for the terminal event, which is always written.
            if written[0] + len(held) + 1 >= cap:
                raise EventCapExceeded(
                    f"run reached AGENT_SDK_STREAM_MAX_EVENTS={cap} events and was stopped"
                )

        # A cancel made in this process cancels the task directly; the store is only asked for
        # cancels made elsewhere (another process's CLI), at most every CANCEL_POLL seconds.
        last_check = [time.monotonic()]

        def cancelled() -> bool:
            now = time.monotonic()
            if now - last_check[0] < CANCEL_POLL:
                return False
            last_check[0] = now
            return self.store.get_run(org_id, run_id).cancel_requested

        s = self.settings
        env = RunEnv(
            run_id=run_id,
            org_id=org_id,
            emit=emit,
            tool_context=ToolContext(
                run_id=run_id,
                org_id=org_id,
                fs_roots=s.engine.fs_allowlist,
                http_allowlist=s.engine.http_allowlist,
                http_timeout=s.engine.http_timeout,
                cancelled=cancelled,
            ),
            max_steps=s.engine.max_steps,
            max_tokens=s.engine.max_tokens,
            cancelled=cancelled,
            allow_model_requests=s.engine.allow_model_requests,
            journal=journal,
            flush=flush,
        )
        if run.cancel_requested:
            raise asyncio.CancelledError
        return await execute(self._agent_of(run), run.input, env)

    def _agent_of(self, run: Run) -> Any:
        spec = dict(run.agent_spec or {})
        if spec.pop("registered", False):
            agent = self.registry.get(run.agent)
            if spec.get("script") == agent.to_spec().get("script"):
                return agent
        return self.registry.resolve(spec or run.agent)

    # -- end ---------------------------------------------------------------------------------
    def _end(
        self, org_id: str, run_id: str, attempt: int, status: RunStatus, **how: Any
    ) -> Outcome:
        """Record how this attempt ended; if the store refuses that, settle the run anyway."""
        try:
            recorded = self.finish(org_id, run_id, status, attempt=attempt, **how)
        except Exception as exc:  # the store was down, refused the output, or a bug
            return self._unrecorded_end(org_id, run_id, attempt, status, exc, how.get("held"))
        if recorded and status is RunStatus.DEAD:
            return Outcome("dead", error=str(how.get("error", {}).get("message", "dead")))
        return self._ended(recorded, org_id, run_id, attempt)

    def _unrecorded_end(
        self,
        org_id: str,
        run_id: str,
        attempt: int,
        status: RunStatus,
        exc: Exception,
        held: Held | None = None,
    ) -> Outcome:
        """The end ``status`` could not be recorded. An unavailable store may take it later:
        the attempt is retried within the policy (with the events ``held`` back, if it takes
        them), and the next one replays the journal to the same end. Anything else would fail
        the same way again: the run ends ``failed`` (or ``dead``) with an error saying so,
        without what could not be stored (the held events included)."""
        why = _describe(exc)
        log.error("run %s: could not record its end (%s): %s", run_id, status.value, why)
        if is_retryable(exc):
            why = f"could not record the run's end: {why}"
            if self.policy.allows(attempt):
                delay = self.policy.delay(attempt)
                return self._retry(org_id, run_id, attempt, delay, why, held=held)
            end, code = RunStatus.DEAD, "retries_exhausted"
            message = f"gave up after {attempt} attempts (AGENT_SDK_RETRY_MAX): {why}"
        else:
            end = RunStatus.DEAD if status is RunStatus.DEAD else RunStatus.FAILED
            code = "unstorable_result"
            message = f"the run ended {status.value} but that could not be stored: {why}"
        try:
            recorded = self.finish(
                org_id, run_id, end, error={"code": code, "message": message}, attempt=attempt
            )
        except Exception as again:
            log.error("run %s: could not record its failure either: %s", run_id, _describe(again))
            if is_retryable(again):
                # The store is down: the job comes back, and the attempt after it finds the
                # run's attempts spent and ends it dead (see _spent), once the store is back.
                return Outcome("retry", delay=self.policy.delay(attempt), error=message)
            return Outcome("dead", error=message)
        if recorded and end is RunStatus.DEAD:
            return Outcome("dead", error=message)
        return self._ended(recorded, org_id, run_id, attempt)

    def _retry(
        self,
        org_id: str,
        run_id: str,
        attempt: int,
        delay: float,
        why: str,
        handback: bool = False,
        held: Held | None = None,
    ) -> Outcome:
        """Queue the run for another attempt, writing the events ``held`` back first. When the
        store cannot take that, the job still comes back after ``delay``: the run stays running
        until its heartbeat goes stale, then the next attempt takes it over."""
        try:
            return self._requeue(org_id, run_id, attempt, delay, why, handback, held or [])
        except Exception as exc:
            log.error("run %s: could not queue it again: %s", run_id, _describe(exc))
            return Outcome("retry", delay=delay, error=why)

    def _unsettled(self, run_id: str, exc: Exception) -> Outcome:
        """An attempt that failed before it started (or outside every other handler): the job
        is retried when the store was unavailable, and dead-lettered with the error otherwise;
        either way it is settled, never left to be leased again and again."""
        why = _describe(exc)
        if is_retryable(exc) or isinstance(exc, Conflict):  # an outage, or a lock to wait for
            # A store outage is reported once by the process (a worker's store health), not
            # once per queued run per retry, which would flood the log of a long outage.
            level = logging.DEBUG if isinstance(exc, BackendUnavailable) else logging.WARNING
            log.log(level, "run %s: the attempt could not start: %s", run_id, why)
            return Outcome("retry", delay=self.policy.delay(1), error=why)
        log.error("run %s: the attempt failed: %s", run_id, why, exc_info=exc)
        return Outcome("dead", error=why)

    def _requeue(
        self,
        org_id: str,
        run_id: str,
        attempt: int,
        delay: float,
        why: str,
        handback: bool,
        held: Held,
    ) -> Outcome:
        if (clean := self._redactor(org_id)) is not None:
            why = clean.redact(why)  # an error message may quote the input
        data: dict[str, Any] = {"attempt": attempt, "error": why, "delay": round(delay, 3)}
        if handback:
            data["handback"] = True  # a stopping worker's: not a failure (see _spent)
        try:
            with self.store.transaction():
                # Fenced: they apply only while the run is still this attempt's.
                events = self.store.append_events(org_id, run_id, held, attempt=attempt)
                back = self.store.update_run(
                    org_id,
                    run_id,
                    expect_status=[RunStatus.RUNNING],
                    expect_attempts=attempt,
                    status=RunStatus.QUEUED,
                )
                if back is None:  # cancelled or finished meanwhile, or taken over
                    return self._ended(False, org_id, run_id, attempt)
                events.append(
                    self.store.append_event(
                        org_id, run_id, EventType.RUN_RETRYING, data, attempt=attempt
                    )
                )
        except (NotFound, Superseded):  # deleted, taken over or ended meanwhile
            return self._ended(False, org_id, run_id, attempt)
        for event in events:
            self.bus.publish(event)
        return Outcome("retry", delay=delay, error=why)

    def finish(self, org_id: str, run_id: str, status: RunStatus, **how: Any) -> bool:
        """Record the run's end (see :meth:`_finish`); False when it did not apply, which
        includes a run deleted meanwhile: there is nothing left to record its end on."""
        try:
            return self._finish(org_id, run_id, status, **how)
        except NotFound:
            if not self._gone(org_id, run_id):
                raise
            return False

    def _finish(
        self,
        org_id: str,
        run_id: str,
        status: RunStatus,
        *,
        output: str | None = None,
        error: dict[str, Any] | None = None,
        usage: Usage | None = None,
        steps: int | None = None,
        reason: str | None = None,
        attempt: int | None = None,
        held: Held | None = None,
    ) -> bool:
        """Record the run's end, after the events the attempt ``held`` back, in one transaction;
        False when it did not apply (the run had already ended, or ``attempt`` is given and
        another attempt has taken the run over)."""
        if (clean := self._redactor(org_id)) is not None:
            output = None if output is None else clean.redact(output)
            error = None if error is None else clean.redact_value(error)
            reason = None if reason is None else clean.redact(reason)
        fields: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        data: dict[str, Any] = {}
        if output is not None:
            fields["output"] = data["output"] = output
        if error is not None:
            fields["error"] = data["error"] = error
        if usage is not None:
            fields["usage"] = data["usage"] = {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
        if steps is not None:
            fields["steps"] = steps
        if reason is not None:
            data["reason"] = reason
            fields.setdefault("error", {"code": "cancelled", "message": reason})
        if status is RunStatus.DEAD:
            data["dead"] = True
        with self.store.transaction():
            try:
                # Before the end, which closes the run to its attempts' writes. A refusal wrote
                # nothing: what commits then is an empty transaction.
                events = self.store.append_events(org_id, run_id, held or [], attempt=attempt)
            except Superseded:
                return False  # taken over or ended meanwhile
            done = self.store.update_run(
                org_id,
                run_id,
                expect_status=[RunStatus.QUEUED, RunStatus.RUNNING],
                expect_attempts=attempt,
                **fields,
            )
            if done is None:
                return False  # somebody else already finished it, or took it over
            events.append(self.store.append_event(org_id, run_id, _TERMINAL_EVENT[status], data))
            keep = self.settings.retention.max_events_per_run
            if keep is not None:
                # At the end only: a run still running may need all of its events to resume
                # from its journal after a crash.
                self.store.prune_events(org_id, run_id, keep=keep)
        for event in events:
            self.bus.publish(event)
        return True


def _storable_error(exc: AgentSDKError) -> dict[str, Any]:
    from agent_sdk.engine.storable import make_storable

    return dict(make_storable(exc.to_dict())[0])


def _describe(exc: BaseException) -> str:
    """An error in words fit for an event: ours, or the type of a foreign one (whose text may
    quote the very characters the store refused)."""
    from agent_sdk.engine.storable import make_storable

    text = exc.message if isinstance(exc, AgentSDKError) else type(exc).__name__
    return str(make_storable(text)[0])
