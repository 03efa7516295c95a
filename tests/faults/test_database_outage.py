"""Drill: PostgreSQL goes away for seconds under a working worker and a serving server.

A loopback TCP proxy (_proxy.py) stands between 127.0.0.1:5432 and a real ``agent-sdk worker``
and a real ``agent-sdk serve`` (both in queue mode, on a Redis queue). With runs in flight the
proxy is stopped (new connections refused, open ones reset), as a database restart or a network
cut would do, then started again. Expected: the worker stays up and says once that the store is
unreachable and once that it is back; ``agent-sdk status`` shows it unhealthy meanwhile; the
server answers 503 (not 500, not a hang) and recovers; no run is cancelled, every run succeeds,
and the invariants of every drill hold.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from server_process import ServeProcess, migrate

from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.records import RunStatus
from faults._broker import ORG, cli, start, wait_until
from faults._drill import logging_agent, submit_runs, wait_in_flight, written_line
from faults._invariants import check_invariants, tool_log
from faults._proxy import Proxy

pytestmark = [pytest.mark.slow, pytest.mark.services]

RUNS = 6
OUTAGE = 6.0  # seconds the database stays away: the fault itself, not a synchronisation
# Answering 503 must not wait on the database for long: well under any client's timeout.
ANSWER_WITHIN = 10.0


def _agent(log: Path) -> dict[str, Any]:
    # Each model turn slow enough that the runs are in flight through the whole outage, even on
    # a busy machine.
    return logging_agent("db-drill", log, 2.0)


def _via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    where = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{where}" if len(netloc) == 2 else where))


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    target = urlsplit(postgres_url)
    made = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    made.start()
    try:
        yield made
    finally:
        made.close()


def _health(env: dict[str, str]) -> list[str]:
    """The health of each live worker, as ``agent-sdk status -o json`` reports it."""
    done = subprocess.run(cli("status", "-o", "json"), env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [w["health"] for w in json.loads(done.stdout)["workers"]["alive"]]


def _timed(client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    began = time.monotonic()
    answer = client.request(method, path, **kw)
    took = time.monotonic() - began
    assert took < ANSWER_WITHIN, f"{method} {path} took {took:.1f}s to answer {answer.status_code}"
    return answer


def test_postgres_unreachable_for_seconds_kills_no_worker_and_fails_no_run(
    isolated_env: dict[str, str],
    postgres_url: str,
    redis_url: str,
    proxy: Proxy,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    calls = tools / "calls.log"
    direct = {
        **isolated_env,
        "AGENT_SDK_STORAGE_BACKEND": "postgres",
        "AGENT_SDK_DATABASE_URL": postgres_url,
        "AGENT_SDK_EXECUTION_MODE": "queue",
        "AGENT_SDK_QUEUE_BACKEND": "redis",
        "AGENT_SDK_REDIS_URL": redis_url,
        # Status shows a live worker "heartbeat late" from one lease after its last beat until
        # three leases, when it counts as stale. The worker may take up to the pool's 10 s
        # connect timeout to notice the cut, so the window must outlast that: 10 to 30 s, where
        # a 3 s lease gave 3 to 9 s and a loaded CI machine missed it.
        "AGENT_SDK_WORKER_LEASE": "10",
        "AGENT_SDK_FS_ALLOWLIST": str(tools),
        "AGENT_SDK_RETRY_BASE_DELAY": "0.2",
    }
    proxied = {**direct, "AGENT_SDK_DATABASE_URL": _via(postgres_url, proxy.port)}
    migrate(direct)
    api = Runtime(load_settings(env=direct, cwd=Path.cwd()))
    log = tmp_path / "worker.log"
    try:
        with ServeProcess(proxied, tmp_path / "serve.log") as server:
            auth = {"Authorization": f"Bearer {server.token}"}
            client = httpx.Client(base_url=server.url, headers=auth, timeout=60)
            with client:
                _drill(api, client, direct, proxied, proxy, log, calls, procs)
    finally:
        api.close(wait=False)


def _drill(
    api: Runtime,
    client: httpx.Client,
    direct: dict[str, str],
    proxied: dict[str, str],
    proxy: Proxy,
    log: Path,
    calls: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    run_ids = submit_runs(client, _agent(calls), RUNS)  # the server reaches it via the proxy
    worker = start(proxied, log, "worker", "--count", "1")
    procs.append(worker)
    wait_in_flight(api, run_ids, log)
    proxy.stop()  # the database is gone: listener closed, every connection reset
    outage = time.monotonic()

    wait_until("the worker to notice", lambda: "store of worker" in log.read_text(), 60, log)
    wait_until(
        "agent-sdk status to show the worker unhealthy",
        lambda: _health(direct) == ["heartbeat late"],
        60,
        log,
    )
    # The server answers, and says the database is unavailable.
    for method, path, kw in [
        ("GET", "/v1/runs", {}),
        ("GET", f"/v1/runs/{run_ids[0]}", {}),
        ("POST", "/v1/runs", {"json": {"agent": _agent(calls), "input": "in the outage"}}),
        ("GET", "/ready", {}),
    ]:
        answer = _timed(client, method, path, **kw)
        assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
        assert answer.json()["code"] == "backend_unavailable", answer.text

    with contextlib.suppress(AssertionError):  # the outage itself: the fault, not a wait
        left = max(0.0, OUTAGE - (time.monotonic() - outage))
        wait_until("nothing (the outage)", lambda: worker.poll() is not None, left)
    assert worker.poll() is None, f"the worker died in the outage:\n{log.read_text()}"
    assert not all(api.store.get_run(ORG, r).status.terminal for r in run_ids)
    proxy.start()

    wait_until(
        "every run to end",
        lambda: all(api.store.get_run(ORG, r).status.terminal for r in run_ids),
        120,
        log,
    )
    wait_until("the server to answer again", lambda: client.get("/v1/runs").status_code == 200)
    assert client.get("/ready").status_code == 200
    wait_until("agent-sdk status to show it healthy", lambda: _health(direct) == ["ok"], 60, log)
    wait_until("the queue to empty", lambda: api.queue.depth().total == 0, 60, log)

    checked = check_invariants(
        api.store, ORG, run_ids, executions=tool_log(calls), line_of=written_line
    )
    for run_id, got in checked.items():
        assert "run.cancelled" not in got.types, f"{run_id} was cancelled: {got.types}"
        assert got.run.status is RunStatus.SUCCEEDED, (got.run.error, got.types)
        assert got.types.count("tool.result") == 4, got.types
    text = log.read_text()
    assert worker.poll() is None, text
    # One line per state change of the store, not one per failed call.
    assert text.count("unreachable: ") == 1 and text.count("reachable again") == 1, text
    assert "error connecting" not in text and "heartbeat of run" not in text, text
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, log.read_text()
