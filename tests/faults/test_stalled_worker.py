"""Drill: a worker paused (SIGSTOP) past its lease while it runs agents, then resumed.

Two real `agent-sdk worker` processes share the store and the queue. Worker A takes every run
(5 model turns with latency, 4 logged tool calls each: `fs.write` appending one line per
execution to a file, so a second execution shows). A is paused in the middle of them; once its
lease runs out, B takes the runs over and finishes them; then A is resumed. Whatever A was
doing, it may write nothing more (every write of an attempt is fenced by the attempt number in
the store) and it must not call its tools again. On SQLite (with its SQLite queue) and on
PostgreSQL with a Redis queue.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.ids import parse_time
from agent_sdk.records import EventType, Run, RunStatus
from faults._drill import ODD, written_line
from faults._invariants import check_invariants, tool_log
from faults._stalled import DEADLINE, Workers, pause_outside_writes, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc"),
]

ORG = "default"
LEASE = 3.0
RUNS = 8
# Seconds each model turn of run i takes: spread, so that when the worker is paused its runs
# are at every phase of their turns relative to the heartbeats (which check the fence).
TURNS = [0.3 + 0.13 * i for i in range(RUNS)]


def _agent(log: Path, turn: float) -> dict[str, object]:
    def write(k: int) -> dict[str, object]:
        args = {"path": str(log), "content": f"{{input}}|{k}\n", "append": True}
        return {"tool": "fs.write", "arguments": args, "latency": turn}

    return {
        "name": "stall",
        "model": "scripted",
        "tools": ["fs.write"],
        "script": [*(write(k) for k in range(1, 5)), {"text": "done {input}", "latency": turn}],
    }


@pytest.fixture(params=["sqlite", "postgres"])
def drill_env(
    request: pytest.FixtureRequest, isolated_env: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, str]]:
    tools = tmp_path / "tools"
    tools.mkdir()
    env = {
        **isolated_env,
        "AGENT_SDK_EXECUTION_MODE": "queue",
        "AGENT_SDK_WORKER_LEASE": str(LEASE),
        "AGENT_SDK_FS_ALLOWLIST": str(tools),
        "AGENT_SDK_RETRY_BASE_DELAY": "0.1",
    }
    if request.param == "postgres":
        postgres_url = request.getfixturevalue("postgres_url")
        redis_url = request.getfixturevalue("redis_url")
        sep = "&" if "?" in redis_url else "?"
        env |= {
            "AGENT_SDK_STORAGE_BACKEND": "postgres",
            "AGENT_SDK_DATABASE_URL": postgres_url,
            "AGENT_SDK_QUEUE_BACKEND": "redis",
            "AGENT_SDK_REDIS_URL": f"{redis_url}{sep}queue=stall-{uuid.uuid4().hex[:12]}",
        }
    yield env


def test_a_worker_paused_past_its_lease_writes_nothing_after_the_takeover(
    drill_env: dict[str, str], tmp_path: Path
) -> None:
    workers = Workers(tmp_path, drill_env)
    workers.run("db", "migrate")
    settings = load_settings(env=drill_env, cwd=Path.cwd())
    api = Runtime(settings)  # the server's side: creates and enqueues runs, executes nothing
    try:
        _drill(workers, api, settings, tmp_path / "tools" / "calls.log")
    except BaseException:
        print(workers.logs())  # pytest shows a failing test's output
        raise
    finally:
        workers.stop()
        api.close(wait=False)


def _drill(workers: Workers, api: Runtime, settings: Settings, calls: Path) -> None:
    store = api.store
    paused = workers.start("worker-a")
    runs = [
        api.runs.create(ORG, _agent(calls, TURNS[i]), f"s{i} {ODD[i % len(ODD)]}")
        for i in range(RUNS)
    ]

    def midway(run: Run) -> bool:
        types = [e.type for e in store.iter_events(ORG, run.id)]
        return types.count(EventType.TOOL_RESULT) >= 1 and EventType.RUN_SUCCEEDED not in types

    wait_until("worker A to be midway through every run", lambda: all(map(midway, runs)))
    pause_outside_writes(paused.pid, settings)
    workers.start("worker-b")

    def finished() -> bool:
        return all(store.get_run(ORG, r.id).status.terminal for r in runs)

    wait_until("worker B to take every run over and finish it", finished)
    assert {store.get_run(ORG, r.id).attempts for r in runs} == {2}  # all taken over once
    resumed_at = datetime.now(UTC)
    os.kill(paused.pid, signal.SIGCONT)

    def a_has_stopped_its_attempts() -> bool:
        mine = [w for w in store.list_workers() if w.pid == paused.pid]
        assert mine, "worker A is gone: " + workers.logs()
        return parse_time(mine[0].heartbeat_at) > resumed_at and mine[0].runs_in_flight == 0

    wait_until("worker A to notice it was superseded", a_has_stopped_its_attempts, DEADLINE)
    assert paused.poll() is None, "the resumed worker died"

    checked = check_invariants(
        store, ORG, [r.id for r in runs], executions=tool_log(calls), line_of=written_line
    )
    for run in runs:
        done = checked[run.id]
        assert done.run.status is RunStatus.SUCCEEDED, done.run
        assert done.run.output == f"done {run.input}"
        results = [e.data for e in done.events if e.type == EventType.TOOL_RESULT]
        assert len(results) == 4 and not any("error" in r for r in results), results
    # The queue holds nothing more: the superseded attempts did not hand their jobs back.
    wait_until("an empty queue", lambda: api.queue.depth().total == 0)
