"""Queue mode: the server enqueues, workers execute. Crash tests use real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.recovery import recover
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.worker import Worker
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.base import ModelRequest, ModelResponse
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.errors import ModelError
from agent_sdk.records import Run, RunStatus

ORG = "default"
NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}


def queue_settings(env: dict[str, str], **extra: str) -> Settings:
    full = {**env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_RETRY_BASE_DELAY": "0.01",
            **{f"AGENT_SDK_{k.upper()}": v for k, v in extra.items()}}  # fmt: skip
    return load_settings(env=full, cwd=Path.cwd())


@pytest.fixture(params=["sqlite", "postgres"])
def queue_env(request: pytest.FixtureRequest, isolated_env: dict[str, str]) -> dict[str, str]:
    """The SQLite store and queue, or Postgres and Redis, where a worker runs its attempts on
    lanes (threads with a loop each, see core/lanes.py) rather than on its own loop."""
    if request.param == "sqlite":
        return isolated_env
    redis_url = request.getfixturevalue("redis_url")
    sep = "&" if "?" in redis_url else "?"
    return {
        **isolated_env,
        "AGENT_SDK_STORAGE_BACKEND": "postgres",
        "AGENT_SDK_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "AGENT_SDK_QUEUE_BACKEND": "redis",
        "AGENT_SDK_REDIS_URL": f"{redis_url}{sep}queue=worker-{uuid.uuid4().hex[:12]}",
    }


class Running:
    """A Worker on its own loop in a thread, stopped on exit."""

    def __init__(self, settings: Settings, registry: AgentRegistry | None = None) -> None:
        self.runtime = Runtime(settings, registry=registry)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Runtime:
        self.thread.start()
        self.runtime.attach(self.loop)
        worker = Worker(self.runtime, self.runtime.queue, name="test", poll=0.05)
        self.future = asyncio.run_coroutine_threadsafe(worker.run(self.stop), self.loop)
        return self.runtime

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.runtime.close(wait=False)


def wait_for(rt: Runtime, run_id: str, done: Any = None, timeout: float = 20) -> Run:
    check = done or (lambda r: r.status.terminal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rt.store.get_run(ORG, run_id)
        if check(run):
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id}: {rt.store.get_run(ORG, run_id)}")


def test_queue_mode_enqueues_and_a_worker_executes(queue_env: dict[str, str]) -> None:
    settings = queue_settings(queue_env)
    api = Runtime(settings)  # the server's side: creates and enqueues, executes nothing
    try:
        runs = [api.runs.create(ORG, NOOP, str(i)) for i in range(20)]
        time.sleep(0.2)  # a short window in which nothing may run them: no worker is up yet
        assert {api.runs.get(ORG, r.id).status for r in runs} == {RunStatus.QUEUED}
        assert api.queue.depth().ready == 20
        with Running(settings) as worker_rt:
            for r in runs:
                assert wait_for(worker_rt, r.id).status is RunStatus.SUCCEEDED
        assert api.queue.depth().total == 0
    finally:
        api.close(wait=False)


def test_one_worker_overlaps_waiting_runs(queue_env: dict[str, str]) -> None:
    settings = queue_settings(queue_env, max_concurrent_runs="100")
    slow = {"name": "slow", "model": "scripted", "latency": 1.0, "script": [{"text": "ok"}]}
    with Running(settings) as rt:
        runs = [rt.runs.create(ORG, slow, str(i)) for i in range(60)]
        done = [wait_for(rt, r.id, timeout=60) for r in runs]
    # Read from the runs' own start and finish times, not the wall clock, which a busy machine
    # stretches: one run at a time, no two would overlap.
    assert {r.status for r in done} == {RunStatus.SUCCEEDED}
    spans = [(r.started_at, r.finished_at) for r in done]
    assert all(start and end for start, end in spans)
    in_flight = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert in_flight >= 10, f"at most {in_flight} of 60 waiting runs were in flight at once"


def test_a_duplicate_job_of_a_running_run_does_not_run_it_twice(
    queue_env: dict[str, str],
) -> None:
    """Queues without unique job ids (SQS, Kafka) may deliver a run's job twice. The second
    delivery finds the run alive, gives its job back until the run ends, then drops it."""
    settings = queue_settings(queue_env, worker_lease="1", max_concurrent_runs="10")
    slow = {"name": "slow", "model": "scripted", "latency": 1.5, "script": [{"text": "ok"}]}
    with Running(settings) as rt:
        run = rt.runs.create(ORG, slow, "x")
        wait_for(rt, run.id, lambda r: r.status is RunStatus.RUNNING)
        rt.queue.enqueue("run", {"org_id": ORG, "run_id": run.id}, job_id="duplicate")
        done = wait_for(rt, run.id)
        assert done.status is RunStatus.SUCCEEDED and done.attempts == 1
        deadline = time.monotonic() + 10
        while rt.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.queue.depth().total == 0  # the duplicate was dropped once the run ended
        types = [e.type for e in rt.runs.events(ORG, run.id)]
        assert types.count("run.started") == 1 and types.count("run.succeeded") == 1


class Flaky(ScriptedModel):
    def __init__(self, failures: int) -> None:
        super().__init__([{"text": "ok"}])
        self.failures = failures
        self.asked = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.asked += 1
        if self.asked <= self.failures:
            raise ModelError("throttled", retryable=True)
        return await super().complete(request)


def test_retries_then_dead_letter_in_queue_mode(queue_env: dict[str, str]) -> None:
    settings = queue_settings(queue_env, retry_max="2")
    registry = AgentRegistry(agents=[Agent(name="flaky", model=Flaky(1)),
                                     Agent(name="down", model=Flaky(100))])  # fmt: skip
    with Running(settings, registry) as rt:
        ok = rt.runs.create(ORG, "flaky", "x")
        dead = rt.runs.create(ORG, "down", "x")
        assert wait_for(rt, ok.id).status is RunStatus.SUCCEEDED
        final = wait_for(rt, dead.id)
        assert final.status is RunStatus.DEAD and final.attempts == 3
        deadline = time.monotonic() + 5
        while rt.queue.depth().dead != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        [job] = rt.queue.list_dead()
        assert job.job.id == dead.id and "throttled" in job.error


def test_cancel_a_queued_run_in_queue_mode(isolated_env: dict[str, str]) -> None:
    settings = queue_settings(isolated_env)
    api = Runtime(settings)
    try:
        run = api.runs.create(ORG, NOOP, "x")
        assert api.runs.cancel(ORG, run.id).status is RunStatus.CANCELLED
        with Running(settings) as rt:
            deadline = time.monotonic() + 5
            while rt.queue.depth().total and time.monotonic() < deadline:
                time.sleep(0.02)
            assert rt.queue.depth().total == 0  # taken, found cancelled, acknowledged
            assert rt.runs.get(ORG, run.id).status is RunStatus.CANCELLED
            assert [e.type for e in rt.runs.events(ORG, run.id)] == ["run.created", "run.cancelled"]
    finally:
        api.close(wait=False)


def test_a_run_accepted_but_never_enqueued_is_recovered(isolated_env: dict[str, str]) -> None:
    settings = queue_settings(isolated_env)
    api = Runtime(settings)
    try:
        run = api.runs.create(ORG, NOOP, "x")
        # The server died between commit and enqueue: the job never reached the queue.
        lease = api.queue.reserve("gone", lease=60, timeout=1)
        assert lease is not None
        api.queue.ack(lease)
        assert api.queue.depth().total == 0
        found = recover(api, api.queue)
        assert found.requeued == 1 and api.queue.depth().ready == 1
        with Running(settings) as rt:
            assert wait_for(rt, run.id).status is RunStatus.SUCCEEDED
    finally:
        api.close(wait=False)


def test_recovery_does_not_duplicate_a_backlog_on_queues_without_unique_ids(
    isolated_env: dict[str, str],
) -> None:
    """Without unique job ids a sweep cannot 'enqueue again and keep one': only runs queued
    for three leases get another job, and then not again for three more leases."""
    from agent_sdk.queue.memory import MemoryQueue

    class Counting(MemoryQueue):
        unique_ids = False
        enqueued = 0

        def enqueue(self, kind: str, payload: dict[str, Any], **kw: Any) -> Any:
            Counting.enqueued += 1
            return super().enqueue(kind, payload, **kw)

    settings = queue_settings(isolated_env)
    api = Runtime(settings)
    try:
        fresh = api.runs.create(ORG, NOOP, "fresh")
        old = api.runs.create(ORG, NOOP, "old")
        stale = "2000-01-01T00:00:00.000000Z"
        api.store._exec("UPDATE runs SET updated_at = ? WHERE id = ?", (stale, old.id))  # type: ignore[attr-defined]
        queue = Counting()
        assert recover(api, queue).requeued == 1 and Counting.enqueued == 1
        lease = queue.reserve("w", lease=60, timeout=0)
        assert lease is not None and lease.job.payload["run_id"] == old.id
        assert recover(api, queue).requeued == 0  # touched: not again for three leases
        assert api.store.get_run(ORG, fresh.id).status is RunStatus.QUEUED
    finally:
        api.close(wait=False)


# -- real processes --------------------------------------------------------------------------
def _cli() -> list[str]:
    return [str(Path(sys.executable).parent / "agent-sdk")]


@pytest.fixture
def worker_env(queue_env: dict[str, str]) -> dict[str, str]:
    return {**queue_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_WORKER_LEASE": "1.5"}


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def start_worker(
    env: dict[str, str], procs: list[subprocess.Popen[bytes]], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*_cli(), "worker", "--count", "1"], env=env, stdout=out, stderr=out
        )
    procs.append(proc)
    return proc


@pytest.mark.slow
def test_kill_9_a_worker_mid_run_and_another_finishes_it(
    worker_env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    settings = load_settings(env=worker_env, cwd=Path.cwd())
    api = Runtime(settings)
    try:
        steps = [{"tool": "fs.list", "arguments": {"path": "."}}] * 6 + [{"text": "finished"}]
        spec = {"name": "long", "model": "scripted", "latency": 0.4, "script": steps}
        run = api.runs.create(ORG, spec, "x")
        first = start_worker(worker_env, workers, tmp_path / "w1.log")
        # Let it record a few steps, then kill it without a chance to clean up.
        wait_for(api, run.id, lambda r: len(api.store.list_events(ORG, run.id)) >= 8)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert api.runs.get(ORG, run.id).status is RunStatus.RUNNING
        start_worker(worker_env, workers, tmp_path / "w2.log")
        done = wait_for(api, run.id, timeout=30)
        assert done.status is RunStatus.SUCCEEDED and done.attempts == 2, (
            tmp_path / "w2.log"
        ).read_text()
        events = api.runs.events(ORG, run.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        types = [e.type for e in events]
        assert types.count("tool.result") == 6 and types.count("model.response") == 7
        assert types.count("run.started") == 2 and types[-1] == "run.succeeded"
        assert done.output == "finished"
    finally:
        api.close(wait=False)


@pytest.mark.slow
def test_sigterm_gives_unfinished_runs_back(
    worker_env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    settings = load_settings(env=worker_env, cwd=Path.cwd())
    api = Runtime(settings)
    try:
        spec = {"name": "slow", "model": "scripted", "latency": 30, "script": [{"text": "x"}]}
        run = api.runs.create(ORG, spec, "x")
        proc = start_worker(worker_env, workers, tmp_path / "w.log")
        wait_for(api, run.id, lambda r: r.status is RunStatus.RUNNING)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, (tmp_path / "w.log").read_text()
        back = api.runs.get(ORG, run.id)
        assert back.status is RunStatus.QUEUED
        assert api.queue.depth().ready + api.queue.depth().delayed == 1
    finally:
        api.close(wait=False)


@pytest.mark.slow
def test_cancel_a_run_running_on_another_process(
    worker_env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    settings = load_settings(env=worker_env, cwd=Path.cwd())
    api = Runtime(settings)
    try:
        spec = {"name": "slow", "model": "scripted", "latency": 30, "script": [{"text": "x"}]}
        run = api.runs.create(ORG, spec, "x")
        start_worker(worker_env, workers, tmp_path / "w.log")
        wait_for(api, run.id, lambda r: r.status is RunStatus.RUNNING)
        asked = time.monotonic()
        api.runs.cancel(ORG, run.id)  # this process does not run it: the flag in the store
        done = wait_for(api, run.id, timeout=20)
        # Stopped, not waited out: the model's wait was 30 s, a third of it is ample.
        assert done.status is RunStatus.CANCELLED and time.monotonic() - asked < 10
        deadline = time.monotonic() + 30
        while api.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.queue.depth().total == 0  # the job was acknowledged, not retried
    finally:
        api.close(wait=False)


@pytest.mark.slow  # waits on a sweep
def test_a_running_worker_sweeps_up_runs_that_lost_their_job(
    isolated_env: dict[str, str],
) -> None:
    settings = queue_settings(isolated_env, worker_lease="1")
    with Running(settings) as rt:
        # A run accepted by a server that died before enqueueing it: in the store, not queued.
        from agent_sdk.ids import new_id, utcnow
        from agent_sdk.records import Run as RunRecord

        now = utcnow()
        run = rt.store.insert_run(RunRecord(
            id=new_id("run"), org_id=ORG, agent="noop", status=RunStatus.QUEUED, input="x",
            created_at=now, updated_at=now, agent_spec={**NOOP, "registered": False},
        ))  # fmt: skip
        assert wait_for(rt, run.id, timeout=10).status is RunStatus.SUCCEEDED
