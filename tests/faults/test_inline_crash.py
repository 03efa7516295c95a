"""Drill: `kill -9` of a server with runs running and many queued, then one immediate restart
on the same data. Every accepted run must finish without a second restart: inline (the
restarted server starts the queued runs and takes over the running ones once their heartbeat is
a lease old) and in queue mode (server and worker both killed and restarted), on SQLite and on
PostgreSQL (+ Redis for the queue)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server_process import ServeProcess, agent_sdk, child_env, migrate
from waiting import wait_until

from faults._inline import agent, all_runs, check_outcomes, text_input

pytestmark = pytest.mark.slow

RUNS = 30
CONCURRENCY = 8  # AGENT_SDK_MAX_CONCURRENT_RUNS: 8 running, the rest queued behind them
LEASE = 2.0
# Generous: a loaded 2-core machine runs 30 runs of ~2 s, 8 at a time, in well under this.
FINISH_WITHIN = 180.0


@pytest.fixture
def store_env(engine: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "calls.log").touch()
    env = child_env(
        worker_lease=str(LEASE),
        max_concurrent_runs=str(CONCURRENCY),
        fs_allowlist=str(calls),
        retry_base_delay="0.1",
    )
    yield env


def _create_all(url: str, token: str, calls: Path) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"}
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=30) as api:
        # Hostile requests first: none of them may create a run.
        refused = [
            api.post(f"{url}/v1/runs", json={"agent": agent(0, calls), "input": ["not text"]}),
            api.post(f"{url}/v1/runs", content=b'{"agent": "x", "input": ', headers=json_type),
            api.post(f"{url}/v1/runs", json={"agent": {"name": "x", "model": "no"}, "input": ""}),
        ]
        assert [r.status_code for r in refused] == [422, 422, 422], [r.text for r in refused]

        def create(i: int) -> tuple[str, int]:
            body = {"agent": agent(i, calls), "input": text_input(i)}
            answer = api.post(f"{url}/v1/runs", json=body)
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"]), i

        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(create, range(RUNS)))


def _counts(url: str, token: str) -> dict[str, int]:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        runs = all_runs(api, url)
    out: dict[str, int] = {}
    for r in runs:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def test_kill_9_of_an_inline_server_then_one_restart_finishes_every_run(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "inline"}
    settings = migrate(env)
    calls = Path(env["AGENT_SDK_FS_ALLOWLIST"]) / "calls.log"
    log = tmp_path / "serve.log"
    first = ServeProcess(env, log).__enter__()
    try:
        token = first.token
        created = _create_all(first.url, token, calls)
        # Kill while 8 run and most are still queued, once some tools have recorded results.
        wait_until(
            "runs in flight with tool results recorded",
            lambda: (
                calls.read_text().count("\n") >= 4
                and _counts(first.url, token).get("running", 0) == CONCURRENCY
            ),
            60,
            lambda: first.output,
        )
        before = _counts(first.url, token)
        _kill(first.proc)
        first.proc = None
    finally:
        first.stop()
    assert before.get("running") == CONCURRENCY and before.get("queued", 0) >= 10, before

    with ServeProcess(env, log) as second:
        wait_until(
            "every run to finish after one restart",
            lambda: _counts(second.url, token) == {"succeeded": RUNS},
            FINISH_WITHIN,
            lambda: second.output,
        )
    taken_over = check_outcomes(settings.store.database_url, created, calls)
    assert taken_over >= CONCURRENCY, "the runs in flight at the kill were not taken over"


@pytest.fixture
def queue_env(
    store_env: dict[str, str], engine: str, request: pytest.FixtureRequest
) -> dict[str, str]:
    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "queue"}
    if engine == "postgres":  # the production pair: PostgreSQL and a Redis queue
        redis_url: str = request.getfixturevalue("redis_url")
        sep = "&" if "?" in redis_url else "?"
        env["AGENT_SDK_QUEUE_BACKEND"] = "redis"
        env["AGENT_SDK_REDIS_URL"] = f"{redis_url}{sep}queue=drill-{uuid.uuid4().hex[:12]}"
    return env


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        command = [*agent_sdk(), "worker", "--count", "1"]  # one process: kill -9 takes it all
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def test_kill_9_of_server_and_worker_in_queue_mode_then_one_restart_finishes_every_run(
    queue_env: dict[str, str], tmp_path: Path
) -> None:
    env = queue_env
    settings = migrate(env)
    calls = Path(env["AGENT_SDK_FS_ALLOWLIST"]) / "calls.log"
    log = tmp_path / "drill.log"
    first = ServeProcess(env, log).__enter__()
    worker = _worker(env, log)
    procs = [worker]
    try:
        token = first.token
        created = _create_all(first.url, token, calls)
        wait_until(
            "runs in flight with tool results recorded",
            lambda: (
                calls.read_text().count("\n") >= 4
                and _counts(first.url, token).get("running", 0) == CONCURRENCY
            ),
            60,
            lambda: first.output,
        )
        _kill(first.proc)
        first.proc = None
        _kill(worker)

        with ServeProcess(env, log) as second:
            procs.append(_worker(env, log))
            wait_until(
                "every run to finish after one restart",
                lambda: _counts(second.url, token) == {"succeeded": RUNS},
                FINISH_WITHIN,
                lambda: second.output,
            )
    finally:
        first.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    taken_over = check_outcomes(settings.store.database_url, created, calls)
    assert taken_over >= 1, "no run in flight at the kill was taken over"
