"""An attempt settles its run whatever fails while it records the end: the store given to the
runtime (an injected dependency, not a patch) refuses the successful end, for an outage or for
good. The drills of real processes are in tests/faults/test_poison_output.py."""

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
from agent_sdk.errors import AgentSDKError, BackendUnavailable, InvalidInput, ModelError
from agent_sdk.records import Run, RunStatus
from agent_sdk.store.sqlite import SQLiteStore

ORG = "default"


class RefusingEnd(SQLiteStore):
    """Refuses the first ``times`` successful ends with ``error`` (then takes them)."""

    def __init__(self, path: Path, error: AgentSDKError, times: int) -> None:
        super().__init__(path)
        self.error, self.times = error, times

    def update_run(self, org_id: str, run_id: str, **kw: Any) -> Run | None:
        if kw.get("status") is RunStatus.SUCCEEDED and self.times > 0:
            self.times -= 1
            raise self.error
        return super().update_run(org_id, run_id, **kw)


class Counting(ScriptedModel):
    asked = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        type(self).asked += 1
        return await super().complete(request)


def _runtime(tmp_path: Path, store: SQLiteStore, **env: str) -> Runtime:
    full = {"HOME": str(tmp_path / "home"), "AGENT_SDK_RETRY_BASE_DELAY": "0.01",
            "AGENT_SDK_RETRY_MAX_DELAY": "0.05",
            **{f"AGENT_SDK_{k.upper()}": v for k, v in env.items()}}  # fmt: skip
    Counting.asked = 0
    agent = Agent("end", model=Counting([{"text": "the answer \x00{input}"}]))
    settings = load_settings(env=full, cwd=Path.cwd())
    return Runtime(settings, store=store, registry=AgentRegistry(agents=[agent]))


def _done(rt: Runtime, run_id: str) -> Run:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = rt.store.get_run(ORG, run_id)
        if run.status.terminal:
            return run
        time.sleep(0.01)
    raise AssertionError(rt.store.get_run(ORG, run_id))


def test_an_outage_at_the_end_is_retried_and_the_journal_replays_to_the_same_end(
    tmp_path: Path,
) -> None:
    store = RefusingEnd(tmp_path / "db.sqlite", BackendUnavailable("the disk is full"), 2)
    rt = _runtime(tmp_path, store, retry_max="3")
    try:
        run = _done(rt, rt.runs.create(ORG, "end", "x").id)
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.output == "the answer \ufffdx" and run.attempts == 3
        types = [e.type for e in rt.store.iter_events(ORG, run.id)]
        assert types.count("run.retrying") == 2 and types[-1] == "run.succeeded"
        assert types.count("model.response") == 1 and Counting.asked == 1  # replayed, not asked
    finally:
        rt.close(timeout=10)


def test_an_outage_at_every_end_is_dead_after_the_last_retry(tmp_path: Path) -> None:
    store = RefusingEnd(tmp_path / "db.sqlite", BackendUnavailable("the disk is full"), 99)
    rt = _runtime(tmp_path, store, retry_max="1")
    try:
        run = _done(rt, rt.runs.create(ORG, "end", "x").id)
        assert run.status is RunStatus.DEAD and run.attempts == 2
        assert run.error is not None and run.error["code"] == "retries_exhausted"
        assert "the disk is full" in run.error["message"]
        types = [e.type for e in rt.store.iter_events(ORG, run.id)]
        assert types.count("run.started") == 2 and types[-1] == "run.failed"
    finally:
        rt.close(timeout=10)


@pytest.mark.parametrize(
    "error", [InvalidInput("a text holds characters that cannot be stored"), AgentSDKError("bug")]
)
def test_a_refused_end_fails_the_run_at_once_saying_why(
    tmp_path: Path, error: AgentSDKError
) -> None:
    store = RefusingEnd(tmp_path / "db.sqlite", error, 99)
    rt = _runtime(tmp_path, store, retry_max="3")
    try:
        run = _done(rt, rt.runs.create(ORG, "end", "x").id)
        assert run.status is RunStatus.FAILED and run.attempts == 1
        assert run.error is not None and run.error["code"] == "unstorable_result"
        assert error.message in run.error["message"] and "succeeded" in run.error["message"]
        assert run.output is None
        types = [e.type for e in rt.store.iter_events(ORG, run.id)]
        assert types.count("run.started") == 1 and types[-1] == "run.failed"
        assert types.count("run.failed") == 1
    finally:
        rt.close(timeout=10)


class Failing(ScriptedModel):
    """A provider whose error message holds text no store can hold."""

    def __init__(self, retryable: bool) -> None:
        super().__init__([{"text": "never"}])
        self.retryable = retryable

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise ModelError("upstream said \x00\udfff", retryable=self.retryable)


@pytest.mark.parametrize("retryable", [True, False])
def test_a_model_error_with_unstorable_text_still_ends_the_run(
    tmp_path: Path, retryable: bool
) -> None:
    full = {"HOME": str(tmp_path / "home"), "AGENT_SDK_RETRY_BASE_DELAY": "0.01",
            "AGENT_SDK_RETRY_MAX": "1"}  # fmt: skip
    agent = Agent("failing", model=Failing(retryable))
    settings = load_settings(env=full, cwd=Path.cwd())
    rt = Runtime(settings, registry=AgentRegistry(agents=[agent]))
    try:
        run = _done(rt, rt.runs.create(ORG, "failing", "x").id)
        assert run.status is (RunStatus.DEAD if retryable else RunStatus.FAILED)
        assert run.error is not None and run.error["message"] == "upstream said \ufffd\ufffd"
        for event in rt.store.iter_events(ORG, run.id):
            assert "\udfff" not in str(event.data) and "\x00" not in str(event.data)
    finally:
        rt.close(timeout=10)
