"""Inline mode after a crash: a server that starts on a store a dead server left behind runs
its queued runs and takes over its running ones without a second restart, on SQLite and on
PostgreSQL; a run another live process executes is left alone. The real-process drill (kill -9
of `agent-sdk serve`) is in tests/faults/test_inline_crash.py."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.recovery import recover
from agent_sdk.core.runtime import Runtime
from agent_sdk.ids import utcnow
from agent_sdk.records import EventType, Run, RunStatus
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

ORG = "default"
LEASE = 1.0
QUICK = {"name": "quick", "model": "scripted", "script": [{"text": "done {input}"}]}
# Inputs that break naive stores and templates.
HOSTILE = ["'; DROP TABLE runs; --", "{input} {0} {{}}", "nul-free \u2028 \U0001f680", "x" * 5000]


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in {"WORKER_LEASE": str(LEASE), **env}.items():
        monkeypatch.setenv(f"AGENT_SDK_{key}", value)
    import os

    return load_settings(env=dict(os.environ), cwd=Path.cwd())


def _left_running(rt: Runtime, run: Run, heartbeat: str | None = None) -> Run:
    """Make ``run`` look like one a process was executing when it died: ``running``, attempt
    1 started, its heartbeat ``heartbeat`` (now: a process that died a moment ago)."""
    store = rt.store
    with store.transaction():
        started = store.update_run(
            ORG, run.id, status=RunStatus.RUNNING, started_at=utcnow(), attempts=1
        )
        store.append_event(ORG, run.id, EventType.RUN_STARTED, {"attempt": 1, "resumed": False})
    assert started is not None
    if heartbeat is not None:
        _set_heartbeat(rt, run.id, heartbeat)
        started = store.get_run(ORG, run.id)
    return started


def _set_heartbeat(rt: Runtime, run_id: str, when: str) -> None:
    db: Any = rt.store
    db._exec("UPDATE runs SET updated_at = ? WHERE id = ?", (when, run_id))


def check_invariants(rt: Runtime, run: Run) -> None:
    """One terminal event, last; seq 1..n without gaps or repeats; each tool call once."""
    events = rt.store.list_events(ORG, run.id, limit=10_000)
    types = [e.type for e in events]
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), types
    assert sum(EventType(t).terminal for t in types) == 1, types
    assert EventType(types[-1]).terminal, types
    calls = [e.data.get("id") for e in events if e.type == EventType.TOOL_CALL]
    assert len(calls) == len(set(calls)), types


@pytest.fixture
def dead_server_left(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, dict[str, list[Run]]]]:
    """A store as a crashed inline server leaves it: runs queued (accepted, never started),
    runs running with a fresh heartbeat (it died a moment ago), one running with an old one,
    and a finished run that must stay as it is."""
    # Created in queue mode so that nothing executes them here: the "dead server" never did.
    creator = Runtime(_settings(monkeypatch, EXECUTION_MODE="queue"))
    try:
        creator.store.migrate()
        queued = [creator.runs.create(ORG, QUICK, text) for text in HOSTILE]
        fresh = [_left_running(creator, creator.runs.create(ORG, QUICK, f"r{i}")) for i in range(3)]
        old = [
            _left_running(
                creator, creator.runs.create(ORG, QUICK, "old"), "2000-01-01T00:00:00.000000Z"
            )
        ]
        done = creator.runs.create(ORG, QUICK, "finished")
        creator.store.update_run(ORG, done.id, status=RunStatus.SUCCEEDED, output="kept")
        runs = {"queued": queued, "fresh": fresh, "old": old, "done": [done]}
    finally:
        creator.close()
    monkeypatch.setenv("AGENT_SDK_EXECUTION_MODE", "inline")
    yield _settings(monkeypatch), runs


def test_a_restarted_inline_server_finishes_every_run_the_dead_one_left(
    dead_server_left: tuple[Settings, dict[str, list[Run]]],
) -> None:
    settings, runs = dead_server_left
    rt = Runtime(settings)
    try:
        with TestClient(create_app(settings, runtime=rt)) as client:
            token = settings.admin_token_path.read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}

            def status(run: Run) -> str:
                answer = client.get(f"/v1/runs/{run.id}", headers=auth)
                assert answer.status_code == 200, answer.text
                return str(answer.json()["status"])

            everyone = runs["queued"] + runs["fresh"] + runs["old"]
            # Within the first sweep (a lease and a beat after start) and a generous margin.
            wait_until(
                "every run to finish", lambda: all(status(r) == "succeeded" for r in everyone)
            )
            assert status(runs["done"][0]) == "succeeded"
        for run in runs["queued"]:
            got = rt.store.get_run(ORG, run.id)
            assert got.attempts == 1 and got.output == f"done {run.input}"
            check_invariants(rt, got)
        for run in runs["fresh"] + runs["old"]:
            got = rt.store.get_run(ORG, run.id)
            assert got.attempts == 2, got  # taken over once, resumed
            starts = [e for e in rt.store.list_events(ORG, run.id) if e.type == "run.started"]
            assert [s.data["resumed"] for s in starts] == [False, True]
            check_invariants(rt, got)
        done = rt.store.get_run(ORG, runs["done"][0].id)
        assert done.output == "kept" and done.attempts == 0  # a finished run is not run again
    finally:
        rt.close(timeout=10)


def test_the_sweep_leaves_a_live_run_alone_until_its_heartbeat_is_a_lease_old(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = {"name": "slow", "model": "scripted", "script": [{"text": "late", "latency": 600}]}
    # Created in queue mode, so that nothing executes them here: they are another server's.
    creator = Runtime(_settings(monkeypatch, EXECUTION_MODE="queue"))
    try:
        creator.store.migrate()
        # Another live server's run (it beats; the clock below says when it stopped).
        other = _left_running(creator, creator.runs.create(ORG, QUICK, "'; --{input}"))
        # A queued run a live server is about to start is its own for three leases.
        waiting = creator.runs.create(ORG, QUICK, "\u2028{{}}")
    finally:
        creator.close()
    rt = Runtime(_settings(monkeypatch, EXECUTION_MODE="inline", MAX_CONCURRENT_RUNS="4"))
    try:
        # Executing here, on a loop that could be too busy to beat: never handed on twice.
        ours = rt.runs.create(ORG, slow, "ours")
        wait_until("our run to start", lambda: rt.store.get_run(ORG, ours.id).status == "running")
        beat = datetime.fromisoformat(rt.store.get_run(ORG, other.id).updated_at)
        for after in (0.0, 0.5 * LEASE, 0.99 * LEASE):
            found = recover(rt, None, now=beat + timedelta(seconds=after))
            assert (found.requeued, found.orphans) == (0, 0), after
        assert rt.store.get_run(ORG, other.id).attempts == 1
        found = recover(rt, None, now=beat + timedelta(seconds=1.5 * LEASE))
        assert found.orphans == 1 and found.requeued == 0  # other only; ours is held here
        wait_until("the takeover", lambda: rt.store.get_run(ORG, other.id).status == "succeeded")
        assert rt.store.get_run(ORG, other.id).attempts == 2
        assert rt.store.get_run(ORG, ours.id).attempts == 1
        far = datetime.now(UTC) + timedelta(seconds=3.5 * LEASE)
        assert recover(rt, None, now=far).requeued == 1
        wait_until(
            "the waiting run", lambda: rt.store.get_run(ORG, waiting.id).status == "succeeded"
        )
        rt.runs.cancel(ORG, ours.id)
        wait_until("our run to end", lambda: rt.store.get_run(ORG, ours.id).status == "cancelled")
        for run_id in (other.id, ours.id, waiting.id):
            check_invariants(rt, rt.store.get_run(ORG, run_id))
    finally:
        rt.close(timeout=10)
