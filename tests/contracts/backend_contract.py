"""The Backend contract: every operation the CLI and the TUI use, with the same results and the
same errors whether it runs in-process or through a server.

Use it by subclassing with a ``backend`` fixture that yields a backend bound to an org of its
own (empty at the start of each test), and a ``backend_in_org`` fixture that yields a factory of
backends bound to a given org id::

    class TestLocalBackend(BackendContract):
        @pytest.fixture
        def backend(self, settings): ...

        @pytest.fixture
        def backend_in_org(self, settings): ...

Tests here use only the Backend protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from agent_sdk.backend.base import Backend
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.records import Event, Page, Run, RunStatus, Session


def slow(latency: float, name: str = "slow") -> dict[str, Any]:
    return {"name": name, "model": "scripted", "latency": latency, "script": [{"text": "done"}]}


def steps(n: int, latency: float = 0.0) -> dict[str, Any]:
    """An agent that lists the working directory ``n`` times, then answers."""
    script: list[dict[str, Any]] = [{"tool": "fs.list", "arguments": {"path": "."}}] * n
    return {"name": "steps", "model": "scripted", "latency": latency, "script": [*script,
            {"text": "ok"}]}  # fmt: skip


def wait_for(
    backend: Backend, run_id: str, done: Callable[[Run], bool], timeout: float = 10.0
) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = backend.get_run(run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is still {run.status}")
        time.sleep(0.01)


def finished(backend: Backend, run_id: str, timeout: float = 10.0) -> Run:
    return wait_for(backend, run_id, lambda r: r.status.terminal, timeout)


def walk(list_page: Callable[[str | None], Page[Any]]) -> list[Any]:
    """Every item of a listing, following cursors; fails on a cursor loop."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(100):
        page = list_page(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert page.next_cursor != cursor
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


class BackendContract:
    # -- create and show ------------------------------------------------------------------------
    def test_create_returns_a_queued_run_that_show_finds(self, backend: Backend) -> None:
        run = backend.create_run("demo", "hello there", metadata={"ticket": 42})
        assert isinstance(run, Run)
        assert run.id.startswith("run_")
        assert (run.agent, run.input, run.status) == ("demo", "hello there", RunStatus.QUEUED)
        assert run.metadata == {"ticket": 42}
        assert backend.get_run(run.id).id == run.id

    def test_a_run_finishes_with_output_and_usage(self, backend: Backend) -> None:
        run = backend.create_run("demo", "summarise README.md")
        done = finished(backend, run.id)
        assert done.status is RunStatus.SUCCEEDED
        assert "summarise README.md" in (done.output or "")
        assert done.usage["total_tokens"] > 0
        assert done.attempts == 1 and done.steps == 2
        assert done.started_at and done.finished_at and done.error is None

    def test_inline_specs_and_scripts(self, backend: Backend) -> None:
        spec = {"name": "echo", "model": "scripted", "script": [{"text": "you said {input}"}]}
        run = backend.create_run(spec, "hi")
        assert run.agent == "echo"
        assert finished(backend, run.id).output == "you said hi"
        scripted = backend.create_run("demo", "x", script=[{"text": "scripted answer"}])
        assert finished(backend, scripted.id).output == "scripted answer"

    def test_unicode_and_awkward_input_round_trips(self, backend: Backend) -> None:
        text = 'ünïcödé 日本語 🤖 \u2028 line\nbreak "quoted" \'; DROP TABLE runs; --'
        run = backend.create_run("demo", text, metadata={"k": text})
        shown = backend.get_run(run.id)
        assert shown.input == text and shown.metadata == {"k": text}

    # -- events ---------------------------------------------------------------------------------
    def test_events_are_a_gapless_page_that_resumes_after_any_seq(self, backend: Backend) -> None:
        run = backend.create_run("demo", "go")
        finished(backend, run.id)
        events = backend.list_events(run.id)
        assert all(isinstance(e, Event) for e in events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].type == "run.created" and events[-1].type == "run.succeeded"
        assert backend.list_events(run.id, after=2, limit=3) == events[2:5]
        assert backend.list_events(run.id, after=len(events)) == []

    def test_follow_a_live_run_to_its_terminal_event(self, backend: Backend) -> None:
        run = backend.create_run(steps(3, latency=0.05), "go")
        followed = list(backend.follow_events(run.id))
        assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
        assert followed[-1].type == "run.succeeded" and followed[-1].terminal
        assert followed == backend.list_events(run.id)
        # Resuming after any seq gives exactly the rest.
        assert list(backend.follow_events(run.id, after=4)) == followed[4:]
        assert list(backend.follow_events(run.id, after=len(followed) - 1)) == followed[-1:]

    def test_follow_can_be_abandoned_early(self, backend: Backend) -> None:
        run = backend.create_run(slow(2), "x")
        stream = backend.follow_events(run.id)
        assert next(iter(stream)).type == "run.created"
        stream.close()  # type: ignore[attr-defined]
        backend.cancel_run(run.id)
        assert finished(backend, run.id).status is RunStatus.CANCELLED

    # -- listing --------------------------------------------------------------------------------
    def test_list_runs_newest_first_across_pages(self, backend: Backend) -> None:
        ids = [backend.create_run("demo", str(i)).id for i in range(5)]
        first = backend.list_runs(limit=2)
        assert len(first.items) == 2 and first.next_cursor is not None
        listed = walk(lambda c: backend.list_runs(limit=2, cursor=c))
        assert [r.id for r in listed] == ids[::-1]
        assert backend.list_runs(limit=5).next_cursor is None

    def test_list_runs_by_status(self, backend: Backend) -> None:
        done = backend.create_run("demo", "quick")
        finished(backend, done.id)
        busy = backend.create_run(slow(30), "busy")
        wait_for(backend, busy.id, lambda r: r.status is RunStatus.RUNNING)
        try:
            assert [r.id for r in backend.list_runs(status=["running"]).items] == [busy.id]
            assert [r.id for r in backend.list_runs(status=["queued,running"]).items] == [busy.id]
            assert [r.id for r in backend.list_runs(status=["succeeded"]).items] == [done.id]
            both = backend.list_runs(status=["succeeded", "running"]).items
            assert {r.id for r in both} == {done.id, busy.id}
            assert backend.list_runs(status=["failed"]).items == []
        finally:
            backend.cancel_run(busy.id)
        finished(backend, busy.id)

    def test_sessions_group_runs(self, backend: Backend) -> None:
        a1 = backend.create_run("demo", "1", session_id="chat-1")
        a2 = backend.create_run("demo", "2", session_id="chat-1")
        backend.create_run("demo", "3", session_id="chat-2")
        backend.create_run("demo", "4")
        in_chat = backend.list_runs(session_id="chat-1").items
        assert [r.id for r in in_chat] == [a2.id, a1.id]
        session = backend.get_session("chat-1")
        assert isinstance(session, Session)
        assert session.id == "chat-1" and session.run_count == 2
        listed = walk(lambda c: backend.list_sessions(limit=1, cursor=c))
        assert sorted(s.id for s in listed) == ["chat-1", "chat-2"]

    # -- cancel ---------------------------------------------------------------------------------
    def test_cancel_a_slow_run_ends_it_quickly(self, backend: Backend) -> None:
        run = backend.create_run(slow(5), "wait")
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        started = time.monotonic()
        answer = backend.cancel_run(run.id)
        assert answer.id == run.id
        assert answer.status is RunStatus.CANCELLED or answer.cancel_requested
        done = finished(backend, run.id, timeout=5)
        assert done.status is RunStatus.CANCELLED
        assert time.monotonic() - started < 2
        assert backend.list_events(run.id)[-1].type == "run.cancelled"
        # Cancelling again (or a finished run) changes nothing.
        assert backend.cancel_run(run.id).status is RunStatus.CANCELLED

    def test_cancel_a_finished_run_returns_it_unchanged(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        done = finished(backend, run.id)
        again = backend.cancel_run(run.id)
        assert again.status is RunStatus.SUCCEEDED and again.output == done.output

    # -- errors ---------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "run_id", ["run_00000000000000000000000000", "nope", "../..", "..", ".", "a/b",
                   "x/cancel", "%2e%2e", "x" * 3000, "run with spaces"],
    )  # fmt: skip
    def test_unknown_runs_are_not_found(self, backend: Backend, run_id: str) -> None:
        with pytest.raises(NotFound):
            backend.get_run(run_id)
        with pytest.raises(NotFound):
            backend.cancel_run(run_id)
        with pytest.raises(NotFound):
            backend.list_events(run_id)
        with pytest.raises(NotFound):
            list(backend.follow_events(run_id))

    def test_an_unknown_org_is_not_found_everywhere(
        self, backend_in_org: Callable[[str], Backend]
    ) -> None:
        stranger = backend_in_org("no-such-org")
        for call in (
            lambda: stranger.list_runs(),
            lambda: stranger.list_sessions(),
            lambda: stranger.create_run("demo", "x"),
            lambda: stranger.get_run("run_00000000000000000000000000"),
        ):
            with pytest.raises(NotFound, match="no-such-org"):
                call()

    def test_unknown_sessions_are_not_found(self, backend: Backend) -> None:
        for session_id in ("chat-404", "../..", "a/b"):
            with pytest.raises(NotFound):
                backend.get_session(session_id)

    def test_unknown_agent_is_invalid_input_naming_the_known_ones(self, backend: Backend) -> None:
        with pytest.raises(InvalidInput) as info:
            backend.create_run("dmeo", "x")
        assert "dmeo" in str(info.value)
        assert "demo" in (info.value.hint or "")

    @pytest.mark.parametrize(
        "call",
        [
            lambda b: b.create_run({"model": "scripted"}, "no name"),
            lambda b: b.create_run({"name": "x", "model": "scripted", "latency": -1}, "x"),
            lambda b: b.create_run("demo", "x", script=[{"bogus": 1}]),
            lambda b: b.create_run("demo", "x", session_id="not a valid id!"),
            lambda b: b.list_runs(status=["bogus"]),
            lambda b: b.list_runs(status=["queued,bogus"]),
            lambda b: b.list_runs(limit=0),
            lambda b: b.list_runs(cursor="not-a-cursor"),
            lambda b: b.list_sessions(limit=0),
            lambda b: b.list_sessions(cursor="not-a-cursor"),
        ],
        ids=["spec-without-name", "negative-latency", "bad-script", "bad-session-id",
             "unknown-status", "unknown-status-in-list", "limit-0", "bad-cursor",
             "sessions-limit-0", "sessions-bad-cursor"],
    )  # fmt: skip
    def test_bad_input_is_invalid_input(
        self, backend: Backend, call: Callable[[Backend], Any]
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            call(backend)
        assert str(info.value)

    def test_bad_event_paging_is_invalid_input(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        with pytest.raises(InvalidInput):
            backend.list_events(run.id, after=-1)
        with pytest.raises(InvalidInput):
            backend.list_events(run.id, limit=0)
        finished(backend, run.id)
