"""Retries of failed attempts, dead-lettering, and resuming a run a dead process left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.base import ModelRequest, ModelResponse
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.errors import ModelError
from agent_sdk.records import Run, RunStatus

ORG = "default"


class Flaky(ScriptedModel):
    """Fails with a retryable error the first ``failures`` times it is asked."""

    def __init__(self, failures: int, script: list[dict[str, Any]]) -> None:
        super().__init__(script)
        self.failures = failures
        self.asked = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.asked += 1
        if self.asked <= self.failures:
            raise ModelError("provider overloaded (503)", retryable=True)
        return await super().complete(request)


def runtime(tmp_path: Path, agent: Agent, **env: str) -> Runtime:
    full = {"HOME": str(tmp_path / "home"), "AGENT_SDK_RETRY_BASE_DELAY": "0.01",
            **{f"AGENT_SDK_{k.upper()}": v for k, v in env.items()}}  # fmt: skip
    return Runtime(load_settings(env=full, cwd=Path.cwd()), registry=AgentRegistry(agents=[agent]))


def wait_done(rt: Runtime, run_id: str) -> Run:
    for _ in range(1000):
        run = rt.runs.get(ORG, run_id)
        if run.status.terminal:
            return run
        time.sleep(0.01)
    raise AssertionError(rt.runs.get(ORG, run_id))


def test_a_retryable_failure_is_retried_and_then_succeeds(tmp_path: Path) -> None:
    model = Flaky(2, [{"text": "ok"}])
    rt = runtime(tmp_path, Agent(name="flaky", model=model), retry_max="3")
    try:
        run = wait_done(rt, rt.runs.create(ORG, "flaky", "x").id)
        assert run.status is RunStatus.SUCCEEDED and run.attempts == 3
        types = [e.type for e in rt.runs.events(ORG, run.id)]
        assert types.count("run.retrying") == 2 and types.count("run.started") == 3
        assert types[-1] == "run.succeeded"
        retry = next(e for e in rt.runs.events(ORG, run.id) if e.type == "run.retrying")
        assert retry.data["attempt"] == 1 and "overloaded" in retry.data["error"]
    finally:
        rt.close(timeout=10)


def test_exhausted_retries_dead_letter_the_run(tmp_path: Path) -> None:
    model = Flaky(100, [{"text": "never"}])
    rt = runtime(tmp_path, Agent(name="down", model=model), retry_max="2")
    try:
        run = wait_done(rt, rt.runs.create(ORG, "down", "x").id)
        assert run.status is RunStatus.DEAD and run.attempts == 3 and model.asked == 3
        assert (run.error or {}).get("code") == "model_error"
        last = rt.runs.events(ORG, run.id)[-1]
        assert last.type == "run.failed" and last.data["dead"] is True
        assert [r.id for r in rt.runs.list(ORG, status=["dead"]).items] == [run.id]
    finally:
        rt.close(timeout=10)


@pytest.mark.parametrize("error", [{"error": "bad request"}])
def test_a_non_retryable_failure_fails_at_once(tmp_path: Path, error: dict[str, Any]) -> None:
    rt = runtime(tmp_path, Agent(name="bad", model="scripted", script=[error]), retry_max="3")
    try:
        run = wait_done(rt, rt.runs.create(ORG, "bad", "x").id)
        assert run.status is RunStatus.FAILED and run.attempts == 1
    finally:
        rt.close(timeout=10)


def test_an_orphaned_running_run_is_resumed_from_its_journal(tmp_path: Path) -> None:
    script = [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "done"}]
    agent = Agent(name="two", model="scripted", script=script)
    rt = runtime(tmp_path, agent)
    try:
        run = wait_done(rt, rt.runs.create(ORG, "two", "x").id)
        full = rt.runs.events(ORG, run.id)
        # Make it look as if the process died right after the tool result was recorded.
        cut = next(e.seq for e in full if e.type == "tool.result")
        db = rt.store
        with db.transaction():
            db._exec("DELETE FROM events WHERE run_id = ? AND seq > ?", (run.id, cut))  # type: ignore[attr-defined]
            db.update_run(ORG, run.id, status=RunStatus.RUNNING, finished_at=None, output=None)
        outcome = rt.executor.loop  # the loop the attempt runs on
        import asyncio

        # Its heartbeat is fresh: the attempt that wrote it may be alive, so no takeover yet.
        result = asyncio.run_coroutine_threadsafe(
            rt.executor.attempts.run(ORG, run.id, takeover=True), outcome
        ).result(10)
        assert result.kind == "busy" and 0 < result.delay <= rt.settings.worker.lease
        assert rt.runs.get(ORG, run.id).attempts == 1
        # One lease later without a heartbeat, it is an orphan.
        stale = "2000-01-01T00:00:00.000000Z"
        db._exec("UPDATE runs SET updated_at = ? WHERE id = ?", (stale, run.id))  # type: ignore[attr-defined]
        result = asyncio.run_coroutine_threadsafe(
            rt.executor.attempts.run(ORG, run.id, takeover=True), outcome
        ).result(10)
        assert result.kind == "done"
        resumed = rt.runs.get(ORG, run.id)
        assert resumed.status is RunStatus.SUCCEEDED and resumed.attempts == 2
        events = rt.runs.events(ORG, run.id)
        assert [e.type for e in events].count("tool.call") == 1  # not repeated
        assert events[cut].type == "run.started" and events[cut].data["resumed"] is True
        assert resumed.output == run.output
    finally:
        rt.close(timeout=10)


def test_event_retention_prunes_the_oldest_events_at_the_end(tmp_path: Path) -> None:
    script = [{"tool": "fs.list", "arguments": {"path": "."}}] * 5 + [{"text": "done"}]
    agent = Agent(name="chatty", model="scripted", script=script)
    rt = runtime(tmp_path, agent, event_retention_max_events="4")
    try:
        run = wait_done(rt, rt.runs.create(ORG, "chatty", "x").id)
        events = rt.runs.events(ORG, run.id)
        assert len(events) == 4 and events[-1].type == "run.succeeded"
        assert events[0].seq > 1  # the oldest went; seqs are not renumbered
    finally:
        rt.close(timeout=10)


def test_a_server_start_takes_over_runs_a_dead_server_left_running(settings: Any) -> None:
    import warnings

    from agent_sdk.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from starlette.testclient import TestClient

    rt = Runtime(settings)
    run = rt.store.insert_run(
        Run(id="run_01M8KA00000000000000000000", org_id=ORG, agent="demo",
            status=RunStatus.RUNNING, input="x", created_at="2020-01-01T00:00:00.000000Z",
            updated_at="2020-01-01T00:00:00.000000Z", attempts=1,
            agent_spec={"name": "noop", "model": "scripted", "script": [{"text": "back"}]})
    )  # fmt: skip
    rt.close(wait=False)
    with TestClient(create_app(settings)) as client:
        token = settings.admin_token_path.read_text().strip()
        for _ in range(500):
            got = client.get(f"/v1/runs/{run.id}", headers={"Authorization": f"Bearer {token}"})
            if got.json()["status"] == "succeeded":
                break
            time.sleep(0.01)
        assert got.json()["status"] == "succeeded" and got.json()["attempts"] == 2


def test_an_attempt_that_was_taken_over_stops_without_finishing(tmp_path: Path) -> None:
    """The attempt counter fences writers: once another worker has taken the run over (here
    simulated by raising the counter), the old attempt's heartbeat notices and it stops, leaving
    the run to the new holder: no terminal event, no status change from the stale attempt."""
    agent = Agent(name="slow", model="scripted", script=[{"text": "late", "latency": 5}])
    rt = runtime(tmp_path, agent, worker_lease="1")
    try:
        run = rt.runs.create(ORG, "slow", "x")
        for _ in range(500):
            if rt.runs.get(ORG, run.id).status is RunStatus.RUNNING:
                break
            time.sleep(0.01)
        taken = rt.store.update_run(ORG, run.id, expect_attempts=1, attempts=2)
        assert taken is not None
        # Within a few heartbeats (every lease / 3) the old attempt is gone, long before its
        # model call would have returned.
        assert rt.executor.wait_idle(timeout=2.0)
        after = rt.runs.get(ORG, run.id)
        assert after.status is RunStatus.RUNNING and after.attempts == 2
        types = [e.type for e in rt.runs.events(ORG, run.id)]
        assert not any(t in ("run.succeeded", "run.failed", "run.cancelled") for t in types)
    finally:
        rt.close(timeout=10)
