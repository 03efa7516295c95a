"""Drill: output no store can hold, and a store that refuses to record a run's end.

A model whose text holds a NUL and a lone surrogate, a tool whose result holds them, a run
whose end the database refuses (a trigger: the store itself says no) and, on PostgreSQL, one
whose end meets an outage every time, and a run whose tool kills its worker with SIGKILL on
every attempt. Real ``agent-sdk worker`` processes execute them (and, inline, a real
``agent-sdk serve``). Every run must end once, its job must be settled (nothing
left in the queue, ``run.started`` never past the retry cap), and the invariants must hold.
Before the fix these runs stayed ``running`` forever, with a new ``run.started`` on each lease.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.records import EventType, Run, RunStatus
from faults._invariants import check_invariants, tool_log
from faults._poison import (
    NUL_AND_SURROGATE,
    ORG,
    OUTAGE_PREFIX,
    REFUSE_PREFIX,
    check_poisoned,
    install_finish_faults,
    label_of,
    process_env,
    start,
    wait_until,
    write_agents_module,
)

pytestmark = pytest.mark.slow

RETRY_MAX = 2
CLEAN = NUL_AND_SURROGATE.replace("\x00", "\ufffd").replace("\udfff", "\ufffd")
REPLACED = {"nul": 1, "lone_surrogate": 1, "with": "U+FFFD"}


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(
    request: pytest.FixtureRequest, isolated_env: dict[str, str], tmp_path: Path
) -> dict[str, str]:
    """SQLite with its own queue, or PostgreSQL with Redis (the production pair)."""
    env = {
        "AGENT_SDK_WORKER_LEASE": "2",
        "AGENT_SDK_RETRY_MAX": str(RETRY_MAX),
        "AGENT_SDK_RETRY_BASE_DELAY": "0.05",
        "AGENT_SDK_RETRY_MAX_DELAY": "0.2",
    }
    if request.param == "postgres":
        redis_url = request.getfixturevalue("redis_url")
        sep = "&" if "?" in redis_url else "?"
        env |= {
            "AGENT_SDK_STORAGE_BACKEND": "postgres",
            "AGENT_SDK_DATABASE_URL": request.getfixturevalue("postgres_url"),
            "AGENT_SDK_QUEUE_BACKEND": "redis",
            "AGENT_SDK_REDIS_URL": f"{redis_url}{sep}queue=poison-{uuid.uuid4().hex[:12]}",
        }
    return {**isolated_env, **env}


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _prepare(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The agents module on both sides, a migrated database with the end-refusing triggers."""
    agents = write_agents_module(tmp_path)
    monkeypatch.syspath_prepend(str(agents))  # this process creates runs of those agents
    env.update(process_env(env, agents, tmp_path / "tool.log"))
    settings = load_settings(env=env, cwd=Path.cwd())
    Runtime(settings).close(wait=False)  # migrates
    install_finish_faults(settings)
    return settings


def _check_outcomes(api: Runtime, runs: dict[str, list[Run]], log: Path) -> None:
    lines = tool_log(log)
    cap = RETRY_MAX + 1
    ids = [r.id for group in runs.values() for r in group]
    checked = check_invariants(api.store, ORG, ids, executions=lines, line_of=label_of)
    for kind, group in runs.items():
        for created in group:
            run, events = checked[created.id].run, checked[created.id].events
            check_poisoned(run, events, max_starts=cap)
            types = [e.type for e in events]
            if kind == "text":
                assert run.status is RunStatus.SUCCEEDED, run.error
                assert run.output == f"model {CLEAN} {run.input}"
                response = next(e for e in events if e.type == EventType.MODEL_RESPONSE)
                assert response.data["replaced"] == REPLACED
            elif kind == "tool":
                assert run.status is RunStatus.SUCCEEDED, run.error
                results = [e for e in events if e.type == EventType.TOOL_RESULT]
                assert len(results) == 3 and all(r.data.get("replaced") for r in results)
                assert results[1].data["result"] == "tool " + CLEAN
                assert CLEAN in (run.output or "")
                # The model asked with an unstorable argument: the tool got it made storable.
                assert lines[f"{run.input}/3\ufffd"] == 1
            elif kind == "refused":
                assert run.status is RunStatus.FAILED, run.status
                assert run.error is not None and run.error["code"] == "unstorable_result"
                assert "could not be stored" in run.error["message"]
                assert types.count("run.started") == 1  # a refusal is not retried
            else:  # an outage every time the end is recorded: retried, then dead
                assert run.status is RunStatus.DEAD, run.status
                assert run.error is not None and run.error["code"] == "retries_exhausted"
                assert types.count("run.started") == cap
                assert types.count("run.retrying") == RETRY_MAX
                assert events[-1].data.get("dead") is True


def test_workers_settle_every_poisoned_run(
    store_env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "queue"}
    settings = _prepare(env, tmp_path, monkeypatch)
    api = Runtime(settings)
    try:
        runs: dict[str, list[Run]] = {
            "text": [api.runs.create(ORG, "poison-text", f"t{i}") for i in range(4)],
            "tool": [api.runs.create(ORG, "poison-tool", f"u{i}") for i in range(4)],
            "refused": [api.runs.create(ORG, "plain", f"{REFUSE_PREFIX}-{i}") for i in range(3)],
        }
        if settings.store.backend == "postgres":
            runs["outage"] = [
                api.runs.create(ORG, "plain", f"{OUTAGE_PREFIX}-{i}") for i in range(2)
            ]
        logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
        for log in logs:
            procs.append(start(["worker", "--count", "1"], env, log))
        ids = [r.id for group in runs.values() for r in group]
        wait_until(
            "every run to end",
            lambda: all(api.store.get_run(ORG, i).status.terminal for i in ids),
            120,
            logs,
        )

        def settled() -> bool:
            depth = api.queue.depth()
            return depth.ready + depth.delayed + depth.leased == 0

        wait_until("the queue to be settled", settled, 60, logs)
        assert api.queue.depth().dead == len(runs.get("outage", []))
        _check_outcomes(api, runs, tmp_path / "tool.log")
        for proc in procs:
            assert proc.poll() is None, "a worker died on poisoned output"
    finally:
        api.close(wait=False)


def test_an_inline_server_settles_every_poisoned_run(
    store_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server_process import ServeProcess

    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "inline"}
    settings = _prepare(env, tmp_path, monkeypatch)
    made: dict[str, list[str]] = {"text": [], "tool": [], "refused": []}
    if settings.store.backend == "postgres":
        made["outage"] = []
    # A lone surrogate in a script would be echoed by POST /v1/runs in the agent spec (the
    # edge's business): inline, a model provider of the agents module produces it instead.
    agents = {"text": "poison-model", "tool": "poison-tool", "refused": "plain", "outage": "plain"}
    prefix = {
        "text": "t",
        "tool": "u",
        "refused": REFUSE_PREFIX + "-",
        "outage": OUTAGE_PREFIX + "-",
    }
    with ServeProcess(env, tmp_path / "serve.log") as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            for kind, ids in made.items():
                for i in range(3):
                    body = {"agent": agents[kind], "input": f"{prefix[kind]}{i}"}
                    answer = client.post("/v1/runs", json=body)
                    assert answer.status_code == 201, answer.text
                    ids.append(answer.json()["id"])

            def ended() -> bool:
                page = client.get("/v1/runs", params={"limit": 100})
                assert page.status_code == 200, page.text  # listings hold only storable text
                return all(r["status"] not in ("queued", "running") for r in page.json()["data"])

            wait_until("every run to end", ended, 120, [tmp_path / "serve.log"])
            for ids in made.values():
                for run_id in ids:  # what the store holds, the API can answer
                    assert client.get(f"/v1/runs/{run_id}").status_code == 200
                    assert client.get(f"/v1/runs/{run_id}/events").status_code == 200
    api = Runtime(settings)
    try:
        runs = {kind: [api.store.get_run(ORG, i) for i in ids] for kind, ids in made.items()}
        _check_outcomes(api, runs, tmp_path / "tool.log")
    finally:
        api.close(wait=False)


def test_a_run_that_kills_every_worker_ends_dead_at_the_retry_cap(
    store_env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its tool SIGKILLs the worker each time; the test restarts workers as a supervisor
    would. The run must end dead once its allowed attempts all died, not be started forever,
    and the run beside it must succeed."""
    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "queue"}
    settings = _prepare(env, tmp_path, monkeypatch)
    api = Runtime(settings)
    try:
        crash = api.runs.create(ORG, "poison-crash", "crash")
        plain = api.runs.create(ORG, "plain", "beside")
        restarts = [0]

        def supervise() -> bool:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:  # killed by the poison: start another
                    restarts[0] += 1
                    procs[i] = start(["worker", "--count", "1"], env, tmp_path / "w.log")
            return all(api.store.get_run(ORG, r.id).status.terminal for r in (crash, plain))

        procs.append(start(["worker", "--count", "1"], env, tmp_path / "w.log"))
        wait_until("both runs to end", supervise, 180, [tmp_path / "w.log"])

        def settled() -> bool:
            supervise()
            depth = api.queue.depth()
            return depth.ready + depth.delayed + depth.leased == 0

        wait_until("the queue to be settled", settled, 60, [tmp_path / "w.log"])
        cap = RETRY_MAX + 1
        lines = tool_log(tmp_path / "tool.log")
        got = check_invariants(api.store, ORG, [crash.id], executions=lines, line_of=label_of)
        run, events = got[crash.id].run, got[crash.id].events
        check_poisoned(run, events, max_starts=cap)
        assert run.status is RunStatus.DEAD and run.error is not None
        assert run.error["code"] == "retries_exhausted"
        assert "gave up after 3 attempts" in run.error["message"]
        assert [e.type for e in events].count("run.started") == cap
        assert lines["crash"] == cap  # each attempt died in it
        assert restarts[0] == cap
        assert api.queue.depth().dead == 1
        done = api.store.get_run(ORG, plain.id)
        assert done.status is RunStatus.SUCCEEDED and done.output == "fine beside"
    finally:
        api.close(wait=False)
