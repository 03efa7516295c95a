"""The run lifecycle through the core services, on a real SQLite store and the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.records import Event, Run, RunStatus

ORG = "default"


def slow(latency: float, name: str = "slow") -> dict[str, Any]:
    return {"name": name, "model": "scripted", "latency": latency, "script": [{"text": "done"}]}


def make_runtime(tmp_path: Path, **env: str) -> Runtime:
    full = {"HOME": str(tmp_path / "home"), **{f"AGENT_SDK_{k.upper()}": v for k, v in env.items()}}
    return Runtime(load_settings(env=full, cwd=Path.cwd()))


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    yield runtime
    runtime.close(wait=True, timeout=10)


def wait_done(rt: Runtime, run_id: str, timeout: float = 10) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rt.runs.get(ORG, run_id)
        if run.status.terminal:
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish: {rt.runs.get(ORG, run_id)}")


def collect(rt: Runtime, run_id: str, after: int = 0) -> list[Event]:
    async def go() -> list[Event]:
        return [e async for e in rt.runs.stream(ORG, run_id, after=after)]

    return asyncio.run_coroutine_threadsafe(go(), rt.executor.loop).result(timeout=20)


def test_demo_run_succeeds_with_ordered_events(rt: Runtime) -> None:
    run = rt.runs.create(ORG, "demo", "summarise README.md")
    assert run.status is RunStatus.QUEUED
    done = wait_done(rt, run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert "summarise README.md" in (done.output or "")
    assert done.attempts == 1 and done.steps == 2
    assert done.usage["total_tokens"] > 0
    events = rt.runs.events(ORG, run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types[0] == "run.created" and types[1] == "run.started"
    assert types[-1] == "run.succeeded"
    assert "tool.call" in types and "tool.result" in types
    assert types.index("tool.call") < types.index("tool.result")


def test_stream_follows_a_live_run_to_its_terminal_event(rt: Runtime) -> None:
    spec = {"name": "steps", "model": "scripted", "latency": 0.05, "script": [
        {"tool": "fs.list", "arguments": {"path": "."}},
        {"tool": "fs.list", "arguments": {"path": "."}},
        {"text": "ok"},
    ]}  # fmt: skip
    run = rt.runs.create(ORG, spec, "go")
    events = collect(rt, run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "run.succeeded"
    # Resuming after any seq gives exactly the rest.
    assert collect(rt, run.id, after=4) == events[4:]


def test_a_slow_reader_with_a_tiny_buffer_loses_nothing(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, stream_queue_size="1", max_steps="100")
    try:
        script = [{"tool": "fs.list", "arguments": {"path": "."}}] * 30 + [{"text": "end"}]
        run = rt.runs.create(ORG, {"name": "many", "model": "scripted", "script": script}, "x")

        async def slow_reader() -> list[Event]:
            out = []
            async for e in rt.runs.stream(ORG, run.id):
                out.append(e)
                await asyncio.sleep(0.002)  # slower than the writer: the buffer overflows
            return out

        events = asyncio.run_coroutine_threadsafe(slow_reader(), rt.executor.loop).result(30)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].type == "run.succeeded"
        assert rt.bus.subscriber_count() == 0
    finally:
        rt.close(timeout=10)


def test_cancel_a_running_run_stops_it_at_once(rt: Runtime) -> None:
    run = rt.runs.create(ORG, slow(30), "wait")
    deadline = time.monotonic() + 60
    while rt.runs.get(ORG, run.id).status is not RunStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    rt.runs.cancel(ORG, run.id)
    done = wait_done(rt, run.id, timeout=10)
    assert done.status is RunStatus.CANCELLED
    # Not waited out: the model's wait was 30 s; a third of that is ample on a busy machine.
    assert time.monotonic() - started < 10
    assert rt.runs.events(ORG, run.id)[-1].type == "run.cancelled"


def test_cancel_a_queued_run_never_starts_it(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, max_concurrent_runs="1")
    try:
        blocker = rt.runs.create(ORG, slow(30), "blocker")
        queued = rt.runs.create(ORG, slow(0), "queued")
        cancelled = rt.runs.cancel(ORG, queued.id)
        assert cancelled.status is RunStatus.CANCELLED
        rt.runs.cancel(ORG, blocker.id)
        wait_done(rt, blocker.id)
        time.sleep(0.1)
        types = [e.type for e in rt.runs.events(ORG, queued.id)]
        assert types == ["run.created", "run.cancelled"]
        assert rt.runs.get(ORG, queued.id).attempts == 0
    finally:
        rt.close(timeout=10)


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    """At most two runs at once, and two do run side by side: read from the runs' own start and
    finish times (stamped inside the executor's slot), so a slow machine cannot fail it."""
    rt = make_runtime(tmp_path, max_concurrent_runs="2")
    try:
        started = time.monotonic()
        runs = [rt.runs.create(ORG, slow(0.3), str(i)) for i in range(6)]
        done = [wait_done(rt, r.id, timeout=60) for r in runs]
        assert {r.status for r in done} == {RunStatus.SUCCEEDED}
        assert time.monotonic() - started > 0.85  # three waves of two at the least
        spans = [(r.started_at, r.finished_at) for r in done]
        assert all(start and end for start, end in spans)
        in_flight = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
        assert in_flight == 2, f"{in_flight} runs in flight at once, with a limit of 2"
    finally:
        rt.close(timeout=10)


def test_waiting_runs_overlap(rt: Runtime) -> None:
    """Runs that wait on their model wait side by side, not one after another: read from the
    runs' own start and finish times (one after another, no two would overlap), so a loaded
    machine that makes every run slower cannot fail it."""
    runs = [rt.runs.create(ORG, slow(0.5), str(i)) for i in range(40)]
    done = [wait_done(rt, r.id, timeout=60) for r in runs]
    spans = [(r.started_at, r.finished_at) for r in done]
    assert all(start and end for start, end in spans)
    # The most runs in flight at once: at each start, count the runs started and not finished.
    in_flight = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert in_flight >= 10, f"at most {in_flight} of 40 waiting runs were in flight at once"


def test_event_cap_fails_the_run_with_a_clear_terminal_event(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, stream_max_events="6")
    try:
        script = [{"tool": "fs.list", "arguments": {"path": "."}}] * 10 + [{"text": "end"}]
        run = rt.runs.create(ORG, {"name": "chatty", "model": "scripted", "script": script}, "x")
        done = wait_done(rt, run.id)
        assert done.status is RunStatus.FAILED
        assert "AGENT_SDK_STREAM_MAX_EVENTS" in (done.error or {}).get("message", "")
        events = rt.runs.events(ORG, run.id)
        assert len(events) <= 6 and events[-1].type == "run.failed"
    finally:
        rt.close(timeout=10)


def test_step_limit_fails_the_run(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, max_steps="2")
    try:
        script = [{"tool": "fs.list", "arguments": {"path": "."}}] * 5
        run = rt.runs.create(ORG, {"name": "loop", "model": "scripted", "script": script}, "x")
        done = wait_done(rt, run.id)
        assert done.status is RunStatus.FAILED
        assert (done.error or {}).get("code") == "quota_exceeded"
    finally:
        rt.close(timeout=10)


def test_replay_gives_the_recorded_events(rt: Runtime) -> None:
    run = rt.runs.create(ORG, "demo", "hello")
    wait_done(rt, run.id)

    async def go() -> list[Event]:
        return [e async for e in rt.runs.replay(ORG, run.id)]

    replayed = asyncio.run_coroutine_threadsafe(go(), rt.executor.loop).result(10)
    assert replayed == rt.runs.events(ORG, run.id)


def test_bad_input_is_refused_before_anything_is_stored(rt: Runtime) -> None:
    with pytest.raises(InvalidInput, match="no-such-agent"):
        rt.runs.create(ORG, "no-such-agent", "x")
    with pytest.raises(InvalidInput):
        rt.runs.create(ORG, "demo", "x", session_id="../../etc/passwd")
    with pytest.raises(InvalidInput):
        rt.runs.create(ORG, "demo", "x" * 1_000_001)
    with pytest.raises(InvalidInput):
        rt.runs.list(ORG, status=["bogus"])
    with pytest.raises(InvalidInput):
        rt.runs.create(ORG, {"name": "bad", "model": "scripted", "script": "nope"}, "x")
    assert rt.runs.list(ORG).items == []


def test_other_orgs_runs_are_invisible(rt: Runtime) -> None:
    rt.store.ensure_org("other", "Other")
    run = rt.runs.create(ORG, "demo", "mine")
    wait_done(rt, run.id)
    with pytest.raises(NotFound):
        rt.runs.get("other", run.id)
    with pytest.raises(NotFound):
        rt.runs.events("other", run.id)
    with pytest.raises(NotFound):
        rt.runs.cancel("other", run.id)
    assert rt.runs.list("other").items == []
    with pytest.raises(NotFound):
        rt.runs.create("no-such-org", "demo", "x")


def test_sessions_group_runs(rt: Runtime) -> None:
    a = rt.runs.create(ORG, "demo", "one", session_id="chat-1")
    b = rt.runs.create(ORG, "demo", "two", session_id="chat-1")
    for r in (a, b):
        wait_done(rt, r.id)
    session = rt.sessions.get(ORG, "chat-1")
    assert session.run_count == 2
    listed = rt.runs.list(ORG, session_id="chat-1").items
    assert [r.id for r in listed] == [b.id, a.id]
    rt.store.ensure_org("other", "Other")
    with pytest.raises(NotFound):
        rt.sessions.get("other", "chat-1")
