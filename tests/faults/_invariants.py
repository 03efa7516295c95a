"""The invariants every fault drill checks once it is over, read through the store (SQLite or
PostgreSQL), so one checker serves every drill:

* every accepted run reached a terminal state, and recorded it exactly once: one terminal event,
  the one its status says;
* no event follows the terminal event;
* ``seq`` runs 1..n, with no gap and no repeat;
* a tool whose result was recorded never ran again. Each call is recorded once (``tool.call``)
  and answered at most once, after it. Where the drill's tools append a line per execution to
  a log, a call whose result is recorded ran at least once and at most once more for each
  attempt that started between its call and its result: a crash or a takeover with the call in
  flight is the documented at-least-once of that call, anything more is a re-execution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent_sdk.records import Event, EventType, Run, RunStatus
from agent_sdk.store.base import Store

# The terminal event each terminal status is recorded with (a dead run ends with run.failed).
END_EVENT = {
    RunStatus.SUCCEEDED: EventType.RUN_SUCCEEDED,
    RunStatus.FAILED: EventType.RUN_FAILED,
    RunStatus.DEAD: EventType.RUN_FAILED,
    RunStatus.CANCELLED: EventType.RUN_CANCELLED,
}

# For a tool.call event, the line its tool appends to the drill's log per execution (None: this
# call logs nothing, so only its events can be checked).
LineOf = Callable[[Event], str | None]


@dataclass(frozen=True)
class Checked:
    """A run as the store holds it after the drill, with all its events in order."""

    run: Run
    events: list[Event]

    @property
    def types(self) -> list[str]:
        return [str(e.type) for e in self.events]


def tool_log(path: Path) -> Counter[str]:
    """The lines a drill's tools appended, one per execution. Split on newlines only, not
    ``splitlines()``: an input may hold U+2028."""
    if not path.exists():
        return Counter()
    return Counter(path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1])


def check_invariants(
    store: Store,
    org_id: str,
    run_ids: Iterable[str],
    *,
    executions: Counter[str] | None = None,
    line_of: LineOf | None = None,
) -> dict[str, Checked]:
    """Check every run of ``run_ids``; return each one's state for the drill's own checks.
    ``executions`` (see :func:`tool_log`) and ``line_of`` tie tool calls to their executions."""
    checked: dict[str, Checked] = {}
    for run_id in run_ids:
        run = store.get_run(org_id, run_id)
        events = list(store.iter_events(org_id, run_id))
        _check_run(run, events)
        _check_tools(run, events, executions, line_of)
        checked[run_id] = Checked(run, events)
    return checked


def _where(run: Run, events: list[Event]) -> str:
    return f"run {run.id} ({run.status.value}): {[(e.seq, str(e.type)) for e in events]}"


def _check_run(run: Run, events: list[Event]) -> None:
    where = _where(run, events)
    assert run.status.terminal, "not ended: " + where
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq: " + where
    ends = [i for i, e in enumerate(events) if EventType(str(e.type)).terminal]
    assert len(ends) == 1, f"{len(ends)} terminal events: {where}"
    assert ends[0] == len(events) - 1, "an event follows the terminal one: " + where
    assert EventType(str(events[-1].type)) is END_EVENT[run.status], "end vs status: " + where


def _check_tools(
    run: Run, events: list[Event], executions: Counter[str] | None, line_of: LineOf | None
) -> None:
    where = _where(run, events)
    calls: dict[str, Event] = {}
    answered: set[str] = set()
    starts = [e.seq for e in events if EventType(str(e.type)) is EventType.RUN_STARTED]
    for event in events:
        kind = EventType(str(event.type))
        call_id = str(event.data.get("id", ""))
        if kind is EventType.TOOL_CALL:
            assert call_id not in calls, f"tool call {call_id} recorded twice: {where}"
            calls[call_id] = event
        elif kind is EventType.TOOL_RESULT:
            assert call_id in calls, f"result of tool call {call_id} before its call: {where}"
            assert call_id not in answered, f"two results of tool call {call_id}: {where}"
            answered.add(call_id)
            if executions is None or line_of is None:
                continue
            call = calls[call_id]
            line = line_of(call)
            if line is None:
                continue
            in_flight = sum(1 for s in starts if call.seq < s < event.seq)
            ran = executions.get(line, 0)
            assert 1 <= ran <= 1 + in_flight, f"{line!r} ran {ran} times: {where}"


__all__ = ["END_EVENT", "Checked", "LineOf", "check_invariants", "tool_log"]
