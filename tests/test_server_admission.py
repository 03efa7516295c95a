"""Run creation through the server's admission lane (agent_sdk/server/admission.py): creations
written in groups on the server's event loop, each answered once its own run has committed.

On each store (``engine``): many concurrent POSTs each create exactly one run with its event and
audit record, and it is then executed (inline) or enqueued (queue mode); creations waiting
together are written in one transaction; a member refused by its idempotency key leaves the rest
of its group in that transaction; a store outage refuses a group at once; a full lane answers 503
with Retry-After."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any

import pytest
from waiting import wait_until

from agent_sdk.config import Settings
from agent_sdk.core.runs import Admission
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import BackendUnavailable, InvalidInput, NotFound
from agent_sdk.records import Run
from agent_sdk.server.admission import MAX_PENDING, AdmissionLane

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
CONCURRENT = 24


def _creates_audited(rt: Runtime) -> list[str]:
    entries = rt.store.list_audit("default", limit=1000)
    items = entries.items if hasattr(entries, "items") else entries
    return [e.target for e in items if e.action == "runs.create"]


@pytest.fixture(params=["inline", "queue"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server that executes runs, and the one that only admits them."""
    monkeypatch.setenv("AGENT_SDK_EXECUTION_MODE", str(request.param))
    return str(request.param)


def test_concurrent_posts_each_commit_one_run(
    mode: str, edge_client: TestClient, edge_auth: dict[str, str], edge_runtime: Runtime
) -> None:
    # A TestClient outside its `with` block runs each request on an event loop of its own:
    # these requests really wait on the lane at the same time, from many loops.
    app: Any = edge_client.app
    barrier = threading.Barrier(CONCURRENT)
    answers: list[Any] = [None] * CONCURRENT

    def post(i: int) -> None:
        barrier.wait()
        body = {"agent": NOOP, "input": f"run {i}"}
        answers[i] = TestClient(app).post("/v1/runs", json=body, headers=edge_auth)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [201] * CONCURRENT, [a.text for a in answers]
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == CONCURRENT
    for i, run_id in enumerate(ids):
        shown = edge_client.get(f"/v1/runs/{run_id}", headers=edge_auth).json()
        assert shown["input"] == f"run {i}"
        events = edge_client.get(f"/v1/runs/{run_id}/events", headers=edge_auth).json()["data"]
        assert events[0]["type"] == "run.created" and events[0]["seq"] == 1
    assert sorted(_creates_audited(edge_runtime)) == sorted(ids)
    # Each admitted run is then dispatched: executed here, or waiting for a worker.
    if mode == "inline":

        def all_succeeded() -> bool:
            return all(edge_runtime.runs.get("default", i).status.value == "succeeded" for i in ids)

        wait_until("every admitted run to succeed", all_succeeded)
    else:
        assert edge_runtime.queue is not None
        wait_until("a job per run", lambda: edge_runtime.queue.depth().ready == CONCURRENT)


def _prepare(rt: Runtime, text: str, *, key: str | None = None, org: str = "default") -> Admission:
    return rt.runs.prepare(org, NOOP, text, idempotency_key=key)


def test_creations_waiting_together_share_one_transaction(edge_runtime: Runtime) -> None:
    rt = edge_runtime
    rt.store.ensure_org("default")
    sizes: list[int] = []
    write = rt.runs.write

    def spy(admissions: Any) -> Any:
        sizes.append(len(admissions))
        return write(admissions)

    rt.runs.write = spy  # type: ignore[method-assign]

    async def create_all() -> list[tuple[Run, bool]]:
        lane = AdmissionLane(rt.runs, asyncio.get_running_loop())
        # Five requests ready on the loop at once: each queues its creation before the lane's
        # flush, scheduled by the first, gets its turn.
        waiting = [asyncio.ensure_future(lane.admit(_prepare(rt, f"x{i}"))) for i in range(5)]
        try:
            return await asyncio.gather(*waiting)
        finally:
            lane.close()

    created = asyncio.run(create_all())
    assert sizes == [5]
    assert [replayed for _, replayed in created] == [False] * 5
    assert [rt.runs.get("default", run.id).input for run, _ in created] == [
        f"x{i}" for i in range(5)
    ]


def test_a_refused_creation_leaves_the_rest_of_its_group(
    edge_runtime: Runtime, edge_settings: Settings
) -> None:
    rt = edge_runtime
    rt.store.ensure_org("default")
    first = _prepare(rt, "same", key="k1")
    again = _prepare(rt, "same", key="k1")  # the same request: answered with the first's run
    other = _prepare(rt, "different", key="k1")  # another request with the key: refused
    plain = _prepare(rt, "plain")
    nowhere = _prepare(rt, "lost", org="no-such-org")  # fails the group's write: redone alone
    results = rt.runs.admit([first, again, other, nowhere, plain])
    assert results[0] == (first.run, False)
    assert results[1] == (first.run, True)
    assert isinstance(results[2], InvalidInput)
    assert isinstance(results[3], NotFound)
    assert results[4] == (plain.run, False)
    kept = {r.id for r in rt.runs.list("default", limit=100).items}
    assert kept == {first.run.id, plain.run.id}
    assert sorted(_creates_audited(rt)) == sorted(kept)
    for run_id in kept:
        assert [e.type for e in rt.runs.events("default", run_id)][:1] == ["run.created"]


def test_a_refused_claim_leaves_the_rest_of_the_group_in_one_transaction(
    edge_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = edge_runtime
    rt.store.ensure_org("default")
    first = _prepare(rt, "same", key="k1")
    again = _prepare(rt, "same", key="k1")
    other = _prepare(rt, "different", key="k1")
    plain = _prepare(rt, "plain")
    calls: list[int] = []
    write = rt.runs.write

    def spy(admissions: Any) -> Any:
        calls.append(len(admissions))
        return write(admissions)

    monkeypatch.setattr(rt.runs, "write", spy)
    results = rt.runs.write([first, again, other, plain])[0]
    assert calls == [4]  # one write of the group: no fallback to one per member
    assert results[0] == (first.run, False)
    assert results[1] == (first.run, True)
    assert isinstance(results[2], InvalidInput)
    assert results[3] == (plain.run, False)


def test_a_store_outage_refuses_the_group_at_once(
    edge_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = edge_runtime
    rt.store.ensure_org("default")
    group = [_prepare(rt, f"x{i}") for i in range(4)]
    opened: list[int] = []

    def down() -> Any:
        opened.append(1)
        raise BackendUnavailable("the store is down")

    monkeypatch.setattr(rt.store, "transaction", down)
    results = rt.runs.write(group)[0]
    assert len(opened) == 1  # not waited out again for each member
    assert all(isinstance(r, BackendUnavailable) for r in results)


def test_a_full_lane_answers_503_with_retry_after(
    edge_client: TestClient, edge_auth: dict[str, str]
) -> None:
    lane: AdmissionLane = edge_client.app.state.admissions  # type: ignore[attr-defined]
    lane.max_pending = 0
    try:
        answer = edge_client.post("/v1/runs", json={"agent": NOOP, "input": "x"}, headers=edge_auth)
    finally:
        lane.max_pending = MAX_PENDING
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert edge_client.get("/v1/runs", headers=edge_auth).json()["data"] == []
    created = edge_client.post("/v1/runs", json={"agent": NOOP, "input": "y"}, headers=edge_auth)
    assert created.status_code == 201
