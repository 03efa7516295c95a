"""Operations: retrying runs (one, or many by status and age), `runs list --status dead`,
worker liveness in `agent-sdk status`, and /ready in queue mode."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_worker import ORG, Flaky, Running, queue_settings, wait_for
from typer.testing import CliRunner, Result
from waiting import wait_until

from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.status import status
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.errors import Conflict, InvalidInput
from agent_sdk.ids import id_floor, new_id, parse_time
from agent_sdk.records import RunStatus
from agent_sdk.server.app import create_app
from agent_sdk.store.workers import WorkerInfo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

BOOM = {"name": "boom", "model": "scripted", "script": [{"error": "boom"}]}
runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(cli_app, list(args))


def data(*args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close(wait=True, timeout=10)


def finished(rt: Runtime, run_id: str) -> Any:
    return wait_for(rt, run_id)


# -- ids as time bounds ---------------------------------------------------------------------------
def test_an_id_floor_sorts_below_every_later_id_and_above_earlier_ones() -> None:
    before = new_id("run")
    time.sleep(0.005)
    floor = id_floor("run", parse_time(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"))
    time.sleep(0.005)
    after = new_id("run")
    assert after > floor
    assert id_floor("run", parse_time("2999-01-01T00:00:00Z")) > after > before
    with pytest.raises(InvalidInput):
        parse_time("last tuesday")


# -- retry in the core ----------------------------------------------------------------------------
def test_retry_rules(rt: Runtime) -> None:
    ok = rt.runs.create(ORG, "demo", "x")
    boom = rt.runs.create(ORG, BOOM, "x")
    assert finished(rt, ok.id).status is RunStatus.SUCCEEDED
    assert finished(rt, boom.id).status is RunStatus.FAILED
    with pytest.raises(Conflict, match="succeeded"):
        rt.runs.retry(ORG, ok.id)
    again = rt.runs.retry(ORG, boom.id)
    assert again.status is RunStatus.QUEUED and again.attempts == 1
    with pytest.raises(InvalidInput, match="cannot be retried"):
        rt.runs.retry_many(ORG, status=["running"])
    with pytest.raises(InvalidInput):
        rt.runs.retry_many(ORG, status=[])
    assert finished(rt, boom.id).attempts == 2


def test_retry_of_a_dead_run_brings_its_dead_letter_job_back(isolated_env: dict[str, str]) -> None:
    # Three failures: attempts 1 and 2 retry, 3 dead-letters; the operator's retry is attempt 4.
    settings = queue_settings(isolated_env, retry_max="2")
    registry = AgentRegistry(agents=[Agent(name="flaky", model=Flaky(3))])
    with Running(settings, registry) as rt:
        run = rt.runs.create(ORG, "flaky", "x")
        dead = wait_for(rt, run.id)
        assert dead.status is RunStatus.DEAD and dead.attempts == 3
        deadline = time.monotonic() + 5
        while rt.queue.depth().dead != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rt.queue.depth().dead == 1
        listed = rt.runs.list(ORG, status=["dead"]).items
        assert [r.id for r in listed] == [run.id]
        again = rt.runs.retry(ORG, run.id)
        assert again.status is RunStatus.QUEUED
        done = wait_for(rt, run.id)
        assert done.status is RunStatus.SUCCEEDED and done.attempts == 4
        types = [e.type for e in rt.store.list_events(ORG, run.id)]
        assert types.count("run.retrying") == 3 and types[-1] == "run.succeeded"
        deadline = time.monotonic() + 5
        while rt.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rt.queue.depth().total == 0


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_retry_one_and_many(rt: Runtime) -> None:
    runs = [rt.runs.create(ORG, BOOM, str(i)) for i in range(2)]
    for r in runs:
        finished(rt, r.id)
    rt.close(wait=True, timeout=10)  # the CLI opens the database on its own

    listed = data("runs", "list", "--status", "failed")
    assert sorted(r["id"] for r in listed) == sorted(r.id for r in runs)
    assert data("runs", "list", "--status", "dead") == []

    one = data("runs", "retry", runs[0].id)
    assert one["id"] == runs[0].id and one["status"] == "queued"

    # Many runs need --yes when there is no terminal to ask on.
    refused = cli("runs", "retry", "--status", "failed", "--since", "1h")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert data("runs", "retry", "--status", "failed", "--since", "2999-01-01T00:00:00Z",
                "--yes") == []  # fmt: skip
    result = cli("runs", "retry", "--status", "failed", "--since", "1h", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    retried = json.loads(result.stdout)
    # The local backend executed the first retry to its end before the CLI call returned.
    assert sorted(r["id"] for r in retried) == sorted(r.id for r in runs)
    assert "retried 2 runs" in result.stderr
    for r in runs:
        shown = data("runs", "show", r.id)
        assert shown["status"] == "failed" and shown["attempts"] == 3 - (r is runs[1])

    bad = cli("runs", "retry", "--status", "failed", "--since", "soon", "--yes")
    assert bad.exit_code == 2 and "since" in bad.stderr
    assert cli("runs", "retry").exit_code == 2
    assert cli("runs", "retry", runs[0].id, "--status", "failed").exit_code == 2


def test_cli_status_lists_a_live_worker_then_drops_it(isolated_env: dict[str, str]) -> None:
    # A lease below the 1 s the setting allows, so the test sees heartbeats quickly.
    settings = queue_settings(isolated_env).replace(worker_lease=0.3)
    with Running(settings) as rt:
        deadline = time.monotonic() + 5
        while not rt.store.list_workers() and time.monotonic() < deadline:
            time.sleep(0.02)
        shown = status(rt)
        assert shown["execution_mode"] == "queue" and shown["store"] == "ok"
        assert shown["queue"]["status"] == "ok" and shown["queue"]["ready"] == 0
        assert shown["workers"]["count"] == 1
        assert shown["workers"]["alive"][0]["name"] == "test"
        first = shown["workers"]["alive"][0]["heartbeat_at"]
        # Heartbeats every lease/3 = 0.1 s: the next one moves the time on.
        wait_until(
            "the worker's next heartbeat", lambda: rt.store.list_workers()[0].heartbeat_at > first
        )
        # The CLI sees the same (through the local backend, in another runtime).
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AGENT_SDK_EXECUTION_MODE", "queue")
            seen = data("status")
            assert seen["workers"]["count"] == 1 and seen["queue"]["status"] == "ok"
            table = cli("status", "-o", "table")
            assert table.exit_code == 0 and "1 alive" in table.stdout and "test" in table.stdout
    after = Runtime(settings)
    try:
        shown = status(after)
        assert shown["workers"] == {"alive": [], "count": 0, "stale": 0}
        # A worker killed without cleaning up stays registered, and is counted as stale.
        old = "2000-01-01T00:00:00.000000Z"
        after.store.register_worker(WorkerInfo("gone:1", "gone", 1, old, old))
        assert status(after)["workers"] == {"alive": [], "count": 0, "stale": 1}
    finally:
        after.close(wait=False)


def test_cli_status_shows_a_worker_whose_heartbeat_is_late(isolated_env: dict[str, str]) -> None:
    """A worker that cannot write its heartbeat (its store unreachable, a full disk) cannot say
    so itself: status marks it once its heartbeat is over a lease old, while it is still alive."""
    from datetime import UTC, datetime, timedelta

    def ago(seconds: float) -> str:
        at = datetime.now(UTC) - timedelta(seconds=seconds)
        return at.isoformat(timespec="microseconds")[:-6] + "Z"

    settings = queue_settings(isolated_env)  # a lease of 30 s: alive until 90 s, late past 30
    rt = Runtime(settings)
    try:
        rt.store.register_worker(WorkerInfo("fresh:1", "fresh", 1, ago(60), ago(1)))
        rt.store.register_worker(WorkerInfo("late:2", "late", 2, ago(60), ago(45), health="ok"))
        rt.store.register_worker(WorkerInfo("dead:3", "dead", 3, ago(200), ago(100)))
    finally:
        rt.close(wait=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENT_SDK_EXECUTION_MODE", "queue")
        seen = data("status")
    alive = {w["name"]: w["health"] for w in seen["workers"]["alive"]}
    assert alive == {"fresh:1": "ok", "late:2": "heartbeat late"}
    assert seen["workers"]["stale"] == 1


# -- HTTP -----------------------------------------------------------------------------------------
def test_http_retry_status_and_scopes(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        root = {"Authorization": "Bearer " + settings.admin_token_path.read_text().strip()}
        created = client.post("/v1/runs", json={"agent": BOOM, "input": "x"}, headers=root)
        run_id = created.json()["id"]
        deadline = time.monotonic() + 10
        while client.get(f"/v1/runs/{run_id}", headers=root).json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        viewer = client.post(
            "/v1/admin/api-keys", json={"name": "v", "role": "viewer"}, headers=root
        ).json()["token"]
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        assert client.post(f"/v1/runs/{run_id}/retry", headers=as_viewer).status_code == 403
        assert client.get("/v1/status", headers=as_viewer).status_code == 200
        resp = client.post(f"/v1/runs/{run_id}/retry", headers=root)
        assert resp.status_code == 202 and resp.json()["status"] == "queued"
        bulk = client.post("/v1/runs/retry", json={"status": []}, headers=root)
        assert bulk.status_code == 422
        bulk = client.post("/v1/runs/retry", json={"status": ["succeeded"]}, headers=root)
        assert bulk.status_code == 422
        bulk = client.post("/v1/runs/retry", json={"status": ["dead"], "since": "1h"}, headers=root)
        assert bulk.status_code == 202 and bulk.json() == {"data": []}
        shown = client.get("/v1/status", headers=root).json()
        assert shown["execution_mode"] == "inline" and shown["store"] == "ok"
        assert "queue" not in shown
        ready = client.get("/ready").json()
        assert ready == {"status": "ready", "checks": {"store": "ok"}}


def test_ready_in_queue_mode(isolated_env: dict[str, str], tmp_path: Path) -> None:
    settings = queue_settings(isolated_env)
    with TestClient(create_app(settings)) as client:
        resp = client.get("/ready")
        assert resp.status_code == 200
        assert resp.json()["checks"] == {"store": "ok", "queue": "ok", "workers": 0}
    (tmp_path / "blocker").write_text("a file where a directory should be")
    broken = settings.replace(queue_db_path=str(tmp_path / "blocker" / "queue.db"))
    with TestClient(create_app(broken)) as client:
        resp = client.get("/ready")
        assert resp.status_code == 503, resp.text
        assert resp.json()["checks"]["queue"] != "ok"
        assert resp.json()["checks"]["store"] == "ok"


def test_a_follower_of_a_retried_run_reads_on_to_the_new_end(settings: Settings) -> None:
    import asyncio

    rt = Runtime(settings)
    try:
        run = rt.runs.create("default", {"name": "bad", "model": "scripted",
                                         "script": [{"error": "boom"}]}, "x")  # fmt: skip
        for _ in range(500):
            if rt.runs.get("default", run.id).status.terminal:
                break
            time.sleep(0.01)
        rt.runs.retry("default", run.id)
        for _ in range(500):
            if (
                rt.runs.get("default", run.id).status.terminal
                and rt.runs.get("default", run.id).attempts == 2
            ):
                break
            time.sleep(0.01)

        async def follow() -> list[str]:
            return [e.type async for e in rt.runs.stream("default", run.id)]

        types = asyncio.run_coroutine_threadsafe(follow(), rt.executor.loop).result(10)
        assert types.count("run.failed") == 2 and types[-1] == "run.failed"
        assert "run.retrying" in types
    finally:
        rt.close(timeout=10)
