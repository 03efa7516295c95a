"""Drills of item 2 of issue 11: the queue goes away under a working worker.

* Redis unreachable for ~6 s (a loopback proxy between the worker and Redis, stopped then
  started): the worker stays up, no run is cancelled, every run finishes.
* ``worker --count 2`` with a child killed with -9: the parent starts a new one, and gives up
  (exit 1) only past ``AGENT_SDK_WORKER_RESTART_LIMIT`` restarts in the window.
* SIGTERM to a worker whose every slot is busy: it hands its run back at once, and another
  worker finishes it.
* The SQLite queue on a full disk (a 2 MB tmpfs): the claim fails as BackendUnavailable, the
  worker waits it out, and the runs finish once there is space.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.outage import Outage
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.worker import Worker
from agent_sdk.errors import BackendUnavailable
from agent_sdk.queue.sqlite import SQLiteQueue
from agent_sdk.records import RunStatus
from faults._broker import (
    ORG,
    alive,
    cli,
    sigkill,
    start,
    wait_until,
    workers_of,
)
from faults._disk import fill
from faults._disk import small_disk as mounted
from faults._invariants import check_invariants
from faults._proxy import Proxy

pytestmark = pytest.mark.slow

# Five logged tool calls and a final answer; every model turn waits, so runs are in flight
# when the fault lands. Hostile inputs: SQL, the template's braces, control characters.
AGENT = {
    "name": "drill",
    "model": "scripted",
    "latency": 3.0,  # a run takes ~18 s: it spans the whole outage, even on a busy machine
    "script": [{"tool": "fs.list", "arguments": {"path": "."}}] * 5 + [{"text": "done {input}"}],
}
INPUTS = [
    "'; DROP TABLE runs; --",
    "{input} {tool_result} {{}}",
    "nul-free \t\n\u2028 end",
    "é" * 500,
]


def _settings(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


@pytest.fixture
def store_env(engine: str, isolated_env: dict[str, str]) -> dict[str, str]:
    """The environment with the store of this parametrization (SQLite, or a fresh Postgres
    schema), for the processes of the test and its own runtime alike."""
    return dict(os.environ)


def _all_ended(api: Runtime, run_ids: list[str]) -> bool:
    return all(api.store.get_run(ORG, r).status.terminal for r in run_ids)


def _assert_all_succeeded(api: Runtime, run_ids: list[str]) -> None:
    for run_id, got in check_invariants(api.store, ORG, run_ids).items():
        assert "run.cancelled" not in got.types, f"{run_id} was cancelled: {got.types}"
        assert got.run.status is RunStatus.SUCCEEDED, got.types
        assert got.types.count("tool.result") == 5


def _health(env: dict[str, str]) -> list[str]:
    """The health of each live worker, as ``agent-sdk status -o json`` reports it."""
    done = subprocess.run(cli("status", "-o", "json"), env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [w["health"] for w in json.loads(done.stdout)["workers"]["alive"]]


@pytest.mark.services
def test_redis_unreachable_for_seconds_kills_no_worker_and_cancels_no_run(
    store_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    target = urlsplit(redis_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    via_proxy = f"redis://127.0.0.1:{proxy.port}{target.path}"
    base = {**store_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_QUEUE_BACKEND": "redis",
            "AGENT_SDK_WORKER_LEASE": "3"}  # fmt: skip
    api = Runtime(_settings({**base, "AGENT_SDK_REDIS_URL": redis_url}))
    log = tmp_path / "worker.log"
    try:
        run_ids = [api.runs.create(ORG, AGENT, INPUTS[i % len(INPUTS)]).id for i in range(8)]
        worker = start({**base, "AGENT_SDK_REDIS_URL": via_proxy}, log, "worker", "--count", "1")
        procs.append(worker)
        wait_until(
            "every run in flight",
            lambda: all(api.store.get_run(ORG, r).status is RunStatus.RUNNING for r in run_ids),
            log=log,
        )
        proxy.stop()  # the broker is gone: listener closed, every connection reset
        outage = time.monotonic()
        wait_until("the worker to notice", lambda: "unreachable" in log.read_text(), log=log)
        status_env = {**base, "AGENT_SDK_REDIS_URL": redis_url}
        wait_until(
            "agent-sdk status to show the worker unhealthy",
            lambda: _health(status_env) == ["queue unreachable"],
            log=log,
        )
        # The outage itself lasts ~6 s: this wait is the fault, not a synchronisation.
        with contextlib.suppress(AssertionError):
            left = max(0.0, 6 - (time.monotonic() - outage))
            wait_until("nothing (6 s of outage)", lambda: worker.poll() is not None, timeout=left)
        assert worker.poll() is None, f"the worker died in the outage:\n{log.read_text()}"
        assert not _all_ended(api, run_ids), "the runs must still be in flight when it is back"
        proxy.start()
        wait_until("every run to end", lambda: _all_ended(api, run_ids), timeout=120, log=log)
        wait_until("the worker to see it back", lambda: "reachable again" in log.read_text())
        wait_until("agent-sdk status to show it healthy", lambda: _health(status_env) == ["ok"])
        wait_until("the queue to empty", lambda: api.queue.depth().leased == 0, log=log)
        text = log.read_text()
        assert worker.poll() is None, text
        assert text.count("unreachable") == 1, text  # one line per state change, not per retry
        assert "reachable again" in text, text
        _assert_all_succeeded(api, run_ids)
        # The attempts went on through the outage: none was stopped and taken over.
        assert {api.store.get_run(ORG, r).attempts for r in run_ids} == {1}, text
        depth = api.queue.depth()
        assert (depth.ready, depth.delayed, depth.leased, depth.dead) == (0, 0, 0, 0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    finally:
        proxy.close()
        api.close(wait=False)


@pytest.mark.services
def test_sigterm_with_every_slot_busy_hands_the_run_back_to_another_worker(
    store_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    env = {**store_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_QUEUE_BACKEND": "redis",
           "AGENT_SDK_REDIS_URL": redis_url, "AGENT_SDK_WORKER_LEASE": "3",
           "AGENT_SDK_MAX_CONCURRENT_RUNS": "1"}  # fmt: skip
    api = Runtime(_settings(env))
    first_log, second_log = tmp_path / "w1.log", tmp_path / "w2.log"
    try:
        slow = {**AGENT, "latency": 3.0}  # ~18 s
        run_id = api.runs.create(ORG, slow, INPUTS[0]).id
        first = start(env, first_log, "worker", "--count", "1")
        procs.append(first)
        wait_until(
            "a tool result recorded",
            lambda: any(str(e.type) == "tool.result" for e in api.store.list_events(ORG, run_id)),
            log=first_log,
        )
        first.send_signal(signal.SIGTERM)
        # Its one slot is busy: it must still stop now, not after the run (~18 s) ends.
        assert first.wait(10) == 0, first_log.read_text()
        back = api.store.get_run(ORG, run_id)
        assert back.status is RunStatus.QUEUED, back
        second = start(env, second_log, "worker", "--count", "1")
        procs.append(second)
        wait_until("the run to end", lambda: _all_ended(api, [run_id]), timeout=90, log=second_log)
        _assert_all_succeeded(api, [run_id])
        assert api.store.get_run(ORG, run_id).attempts == 2
    finally:
        api.close(wait=False)


# -- worker --count N supervises its workers ----------------------------------------------------
def _pool(
    env: dict[str, str], log: Path, procs: list[subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], set[int]]:
    parent = start(env, log, "worker", "--count", "2")
    procs.append(parent)
    kids = wait_until("two workers", lambda: workers_of(parent.pid, 2), log=log)
    return parent, kids


def test_worker_count_starts_a_new_worker_for_one_killed_with_9(
    isolated_env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    env = {**isolated_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_WORKER_LEASE": "2"}
    api = Runtime(_settings(env))
    log = tmp_path / "pool.log"
    try:
        run_ids = [api.runs.create(ORG, AGENT | {"latency": 0.5}, s).id for s in INPUTS * 2]
        parent, kids = _pool(env, log, procs)
        wait_until(
            "runs in flight",
            lambda: any(api.store.get_run(ORG, r).status is RunStatus.RUNNING for r in run_ids),
            log=log,
        )
        victim = min(kids)
        sigkill(victim)
        fresh = wait_until(
            "a new worker",
            lambda: workers_of(parent.pid, 2, without=victim),
            log=log,
        )
        assert parent.poll() is None, log.read_text()
        assert "was killed by SIGKILL; starting a new one" in log.read_text()
        wait_until("every run to end", lambda: _all_ended(api, run_ids), timeout=120, log=log)
        _assert_all_succeeded(api, run_ids)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0, log.read_text()
        assert not any(alive(pid) for pid in fresh), "workers outlived their parent"
    finally:
        api.close(wait=False)


def test_worker_count_gives_up_and_exits_non_zero_past_the_restart_limit(
    isolated_env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    limits = {"AGENT_SDK_WORKER_RESTART_LIMIT": "1", "AGENT_SDK_WORKER_RESTART_WINDOW": "600"}
    env = {**isolated_env, "AGENT_SDK_EXECUTION_MODE": "queue", **limits}
    log = tmp_path / "pool.log"
    parent, kids = _pool(env, log, procs)
    first = min(kids)
    sigkill(first)  # restart 1 of 1: allowed
    now = wait_until(
        "a new worker",
        lambda: workers_of(parent.pid, 2, without=first),
        log=log,
    )
    sigkill(min(now))  # restart 2 of 1: the parent gives up
    assert parent.wait(60) == 1, log.read_text()
    text = log.read_text()
    assert "giving up" in text and "AGENT_SDK_WORKER_RESTART_LIMIT" in text, text
    assert wait_until("the other worker to stop", lambda: not any(alive(p) for p in now), log=log)


# -- the SQLite queue on a full disk ---------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted(tmp_path / "small", "2m") as where:
        yield where


def test_the_sqlite_queue_on_a_full_disk_raises_backend_unavailable_then_recovers(
    small_disk: Path,
) -> None:
    queue = SQLiteQueue(small_disk / "queue.db")
    try:
        hostile = "'; DROP TABLE jobs; --\u2028"
        jobs = [queue.enqueue("run", {"n": i, "text": hostile}) for i in range(3)]
        filler = fill(small_disk)
        for _ in range(3):  # every try fails the same way, and leaves the jobs as they were
            with pytest.raises(BackendUnavailable, match="the disk is full") as caught:
                queue.reserve("w", lease=5, timeout=0)
            assert caught.value.hint and "free space" in caught.value.hint
        with pytest.raises(BackendUnavailable, match="the disk is full"):
            queue.enqueue("run", {"big": "x" * 100_000})
        assert queue.depth().ready == 3
        filler.unlink()
        leased = [queue.reserve("w", lease=5, timeout=0) for _ in jobs]
        assert [lease.job.id for lease in leased if lease] == [job.id for job in jobs]
        assert all(lease and lease.job.attempts == 1 for lease in leased)
    finally:
        queue.close()


def test_a_full_disk_under_the_sqlite_queue_is_an_outage_the_worker_waits_out(
    isolated_env: dict[str, str], small_disk: Path
) -> None:
    env = {**isolated_env, "AGENT_SDK_EXECUTION_MODE": "queue",
           "AGENT_SDK_QUEUE_DB_PATH": str(small_disk / "queue.db")}  # fmt: skip
    settings = _settings(env)
    api = Runtime(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        run_ids = [api.runs.create(ORG, AGENT | {"latency": 0}, s).id for s in INPUTS]
        filler = fill(small_disk)
        runtime = Runtime(settings)
        runtime.attach(loop)
        worker = Worker(runtime, runtime.queue, name="disk-drill", poll=0.05)
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(worker.run(stop), loop)
        try:
            wait_until("the worker to see the outage", lambda: worker.queue_health.failures >= 2)
            assert not future.done(), future.exception()
            assert all(api.store.get_run(ORG, r).status is RunStatus.QUEUED for r in run_ids)
            filler.unlink()  # space again
            wait_until("every run to end", lambda: _all_ended(api, run_ids), timeout=90)
            wait_until("the worker to report the queue back", lambda: worker.queue_health.healthy)
        finally:
            loop.call_soon_threadsafe(stop.set)
            future.result(30)
            runtime.close(wait=False)
        _assert_all_succeeded(api, run_ids)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        api.close(wait=False)


def test_an_outage_logs_one_line_when_it_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    health = Outage("queue", logging.getLogger("drill"), clock=lambda: now[0],
                    rand=lambda lo, hi: hi)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="drill"):
        waits = [health.failed("connection refused\r\nSET x") for _ in range(12)]
        now[0] += 7.5
        health.ok()
        health.ok()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "queue unreachable",
        "queue reachable again after 7.5s (12 failed calls)",
    ]
    assert waits[0] == 0.25 and waits == sorted(waits) and max(waits) == 5.0  # capped backoff
    assert health.healthy and health.failures == 0
