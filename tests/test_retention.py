"""Retention on its real path, on SQLite and on Postgres: per-org policies through the HTTP API
and the CLI, expired data hidden from every read at once, the sweeper deleting in bounded
batches (never a queued or running run), the audit log pruned with a signed anchor that keeps
``audit verify`` green, and the global cap on events per run.

Data is made old by moving the retention clock forward (``clock`` fixture): everything is
written for real, at the real time, and the policy then looks at it from the future.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk import ids as _ids
from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core import retention as retention_module
from agent_sdk.core import retention_sweep
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.records import EventType, RetentionPolicy, Run, RunStatus
from agent_sdk.server.app import create_app
from agent_sdk.times import iso

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's note about httpx2
    from starlette.testclient import TestClient

ORG = "default"
OTHER = "other-org"
BATCH = 3
CANARY = "canary-7d1f secret input"
runner = CliRunner()


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of every process of a test (also set for the CLI), on each engine."""
    values = {
        "AGENT_SDK_RETENTION_BATCH_SIZE": str(BATCH),
        "AGENT_SDK_RETENTION_SWEEP_INTERVAL": "0",  # background sweeps only where a test says
        "AGENT_SDK_AUDIT_HASH_CHAIN": "true",
        "AGENT_SDK_AUDIT_CHECKPOINT_EVERY": "4",
        "AGENT_SDK_BACKEND": "local",
    }
    if request.param == "postgres":
        values["AGENT_SDK_STORAGE_BACKEND"] = "postgres"
        values["AGENT_SDK_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**isolated_env, **values}


@pytest.fixture
def conf(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


@pytest.fixture
def rt(conf: Settings) -> Iterator[Runtime]:
    runtime = Runtime(conf)
    runtime.orgs.create(OTHER)
    yield runtime
    runtime.close(wait=True, timeout=10)


class Clock:
    """The retention clock, ``days`` ahead of the wall clock."""

    def __init__(self) -> None:
        self.days = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.days)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(retention_module, "_now", c)
    return c


@pytest.fixture
def client(conf: Settings, rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(conf, runtime=rt)) as c:
        yield c


@pytest.fixture
def root(conf: Settings, client: TestClient) -> dict[str, str]:
    """The bootstrap key: admin of `default`, with admin:platform."""
    return bearer(conf.admin_token_path.read_text().strip())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_key(client: TestClient, root: dict[str, str], org: str = ORG, **body: Any) -> str:
    body.setdefault("name", "test")
    resp = client.post("/v1/admin/api-keys", json=body, headers={**root, "X-Org-Id": org})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


# -- helpers --------------------------------------------------------------------------------------
def finished(rt: Runtime, org: str = ORG, *, session: str | None = None, n: int = 1) -> list[Run]:
    """``n`` runs of the demo agent, executed to the end, oldest first."""
    ids = [rt.runs.create(org, "demo", f"{CANARY} {i}", session_id=session).id for i in range(n)]
    return [wait_done(rt, org, run_id) for run_id in ids]


def wait_done(rt: Runtime, org: str, run_id: str) -> Run:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run = rt.store.get_run(org, run_id)
        if run.status.terminal:
            return run
        time.sleep(0.01)
    raise AssertionError(rt.store.get_run(org, run_id))


def stored_run(
    rt: Runtime, status: RunStatus, *, org: str = ORG, session: str | None = None
) -> Run:
    """A run written straight to the store in ``status`` (a run some worker is executing)."""
    now = _ids.utcnow()
    run = Run(
        id=_ids.new_id("run"),
        org_id=org,
        agent="demo",
        status=status,
        input=CANARY,
        created_at=now,
        updated_at=now,
        session_id=session,
        attempts=1 if status is RunStatus.RUNNING else 0,
    )
    rt.store.insert_run(run)
    rt.store.append_event(org, run.id, EventType.RUN_CREATED, {"agent": "demo"})
    rt.store.append_event(org, run.id, EventType.RUN_STARTED, {"attempt": 1})
    return run


def run_at(rt: Runtime, when: datetime, *, session: str | None = None, org: str = ORG) -> Run:
    """A finished run as if created at ``when`` (the moved clock's "now"), with its session
    touched then too: how a run made today looks to a clock that has moved on."""
    ms = int(when.timestamp() * 1000)
    at = iso(when)
    run = Run(
        id="run_" + _ids._encode((ms << 80) | secrets.randbits(80)),
        org_id=org,
        agent="demo",
        status=RunStatus.SUCCEEDED,
        input=CANARY,
        created_at=at,
        updated_at=at,
        session_id=session,
    )
    rt.store.insert_run(run)
    rt.store.append_event(org, run.id, EventType.RUN_CREATED, {"agent": "demo"}, time=at)
    rt.store.append_event(org, run.id, EventType.RUN_SUCCEEDED, {}, time=at)
    if session is not None:
        rt.store._exec(
            "UPDATE sessions SET updated_at = ? WHERE org_id = ? AND id = ?", (at, org, session)
        )
    return run


def ids(items: Any) -> list[str]:
    return [item.id for item in items]


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(cli_app, list(args), input=input)


def cli_data(*args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


class Batches:
    """The sweeper's progress callback: every batch it reports, as (what, rows)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def __call__(self, org_id: str, what: str, rows: int) -> None:
        self.seen.append((what, rows))

    def total(self, what: str) -> int:
        return sum(rows for w, rows in self.seen if w == what)


# -- the policy -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"runs_days": 0},
        {"runs_days": -1},
        {"events_days": 36_501},
        {"audit_days": 10**30},
        {"runs_days": "30"},
        {"runs_days": 1.5},
        {"runs_days": True},
        {"keep_last_runs_per_session": 10_001},
        {"runs_days": {"$gt": 1}},
        {"run_days": 30},  # a typo must not silently keep everything
        {"runs_days": 1, "__proto__": 1},
    ],
)
def test_hostile_policy_values_are_refused_everywhere(
    client: TestClient, root: dict[str, str], rt: Runtime, bad: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        RetentionPolicy.parse(bad)
    resp = client.put("/v1/admin/retention", json=bad, headers=root)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert rt.store.get_org_setting(ORG, "retention") is None


def test_policy_bodies_that_are_not_objects_or_too_big(
    client: TestClient, root: dict[str, str], conf: Settings
) -> None:
    for body in ([1, 2], "30", None):
        assert client.put("/v1/admin/retention", json=body, headers=root).status_code == 422
    huge = '{"runs_days": 1, "pad": "' + "x" * (conf.server.max_body_bytes + 1) + '"}'
    resp = client.put(
        "/v1/admin/retention", content=huge, headers={**root, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413


def test_policy_round_trip_and_audit_over_http(
    client: TestClient, root: dict[str, str], rt: Runtime
) -> None:
    empty = client.get("/v1/admin/retention", headers=root).json()
    assert empty == {
        "org_id": ORG,
        "runs_days": None,
        "events_days": None,
        "audit_days": None,
        "keep_last_runs_per_session": None,
    }
    body = {"runs_days": 90, "events_days": 30, "audit_days": 365}
    put = client.put("/v1/admin/retention", json=body, headers=root)
    assert put.status_code == 200 and put.json() == empty | body
    assert client.get("/v1/admin/retention", headers=root).json() == empty | body
    # PUT replaces: a limit left out is removed.
    put = client.put("/v1/admin/retention", json={"keep_last_runs_per_session": 5}, headers=root)
    assert put.json() == empty | {"keep_last_runs_per_session": 5}
    cleared = client.delete("/v1/admin/retention", headers=root)
    assert cleared.status_code == 200 and cleared.json() == empty
    assert rt.store.get_org_setting(ORG, "retention") is None
    actions = [e.action for e in rt.audit.tail(ORG, limit=10)]
    assert actions[-3:] == ["retention.set", "retention.set", "retention.clear"]
    set_record = [e for e in rt.audit.tail(ORG, limit=10) if e.action == "retention.set"][0]
    assert set_record.details["runs_days"] == 90 and set_record.target == ORG


def test_who_may_read_and_change_a_policy(
    client: TestClient, root: dict[str, str], rt: Runtime
) -> None:
    viewer = bearer(make_key(client, root, role="viewer"))
    assert client.get("/v1/admin/retention", headers=viewer).status_code == 403
    assert (
        client.put("/v1/admin/retention", json={"runs_days": 1}, headers=viewer).status_code == 403
    )
    other_admin = bearer(make_key(client, root, org=OTHER, role="admin"))
    # An org admin manages its own org's policy ...
    mine = client.put("/v1/admin/retention", json={"runs_days": 7}, headers=other_admin)
    assert mine.status_code == 200 and mine.json()["org_id"] == OTHER
    # ... and cannot reach another org's, which stays untouched.
    resp = client.put(
        "/v1/admin/retention", json={"runs_days": 1}, headers={**other_admin, "X-Org-Id": ORG}
    )
    assert resp.status_code == 403
    assert rt.store.get_org_setting(ORG, "retention") is None
    # A platform admin may act in another org; the caller's own org keeps its policy.
    resp = client.put(
        "/v1/admin/retention", json={"audit_days": 30}, headers={**root, "X-Org-Id": OTHER}
    )
    assert resp.status_code == 200 and resp.json()["audit_days"] == 30
    assert rt.store.get_org_setting(ORG, "retention") is None
    for hostile in ("../default", "default/../x", "a" * 65, "nobody\x00"):
        resp = client.get("/v1/admin/retention", headers={**root, "X-Org-Id": hostile})
        assert resp.status_code == (422 if "\x00" in hostile else 400), hostile
    assert (
        client.get("/v1/admin/retention", headers={**root, "X-Org-Id": "nobody"}).status_code == 404
    )
    assert client.get("/v1/admin/retention", headers=bearer("asdk_" + "x" * 40)).status_code == 401
    assert client.get("/v1/admin/retention").status_code == 401
    # Sweeping every org is a platform act.
    assert (
        client.post("/v1/admin/retention/sweep?all_orgs=true", headers=other_admin).status_code
        == 403
    )


def test_policy_through_the_cli() -> None:
    empty = cli_data("orgs", "retention", "show")
    assert empty["org_id"] == ORG and empty["runs_days"] is None
    done = cli_data(
        "orgs", "retention", "set", "--runs-days", "90", "--keep-last-runs", "20", "--org", ORG,
        "--yes",
    )  # fmt: skip
    assert (done["runs_days"], done["keep_last_runs_per_session"], done["audit_days"]) == (
        90,
        20,
        None,
    )
    assert cli_data("orgs", "retention", "show")["runs_days"] == 90
    table = cli("orgs", "retention", "show", "-o", "table").stdout
    assert "90 days" in table and "keep forever" in table
    for bad in (["--runs-days", "0"], ["--audit-days", "36501"], ["--runs-days", "x"], []):
        result = cli("orgs", "retention", "set", *bad, "--yes")
        assert result.exit_code == 2, (bad, result.stdout, result.stderr)
    assert cli("orgs", "retention", "show", "--org", "nobody").exit_code == 1
    assert cli_data("orgs", "retention", "clear")["runs_days"] is None


def test_setting_a_policy_and_sweeping_ask_first(
    rt: Runtime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_sdk.cli import keys as keys_cli

    finished(rt, n=2)
    set_args = ("orgs", "retention", "set", "--runs-days", "10")
    # No terminal to ask on, or --no-input: refused as a usage error, nothing changed.
    for extra in ((), ("--no-input",), ("-o", "json")):
        result = cli(*set_args, *extra)
        assert result.exit_code == 2, (extra, result.stdout, result.stderr)
        assert "needs confirmation" in result.stderr and "--yes" in result.stderr
    assert cli(*set_args, "--yes=false").exit_code == 2  # a flag, not a value
    assert cli_data("orgs", "retention", "show")["runs_days"] is None
    monkeypatch.setattr(keys_cli, "_interactive", lambda: True)
    declined = cli(*set_args, input="n\n")
    assert declined.exit_code == 3, declined.stderr
    assert f"retention policy of org {ORG}" in declined.stderr and "runs days 10" in declined.stderr
    assert cli(*set_args, "--no-input").exit_code == 2  # --no-input wins over a terminal
    assert cli(*set_args, input="\n").exit_code == 3  # the default answer is no
    assert cli_data("orgs", "retention", "show")["runs_days"] is None
    assert cli(*set_args, input="y\n").exit_code == 0
    assert cli_data("orgs", "retention", "show")["runs_days"] == 10

    clock.days = 11  # both runs expired: hidden, and the sweep would delete them for good
    monkeypatch.setattr(keys_cli, "_interactive", lambda: False)
    refused = cli("retention", "sweep", "--org", ORG)
    assert refused.exit_code == 2 and "needs confirmation" in refused.stderr
    dry = cli("retention", "sweep", "--org", ORG, "--dry-run", "-o", "json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["orgs"][0]["runs"] == 2
    monkeypatch.setattr(keys_cli, "_interactive", lambda: True)
    no = cli("retention", "sweep", input="n\n")
    assert no.exit_code == 3 and "every org with a policy" in no.stderr
    again = cli("retention", "sweep", "--org", ORG, "--dry-run", "-o", "json")
    assert json.loads(again.stdout)["orgs"][0]["runs"] == 2  # still there to be deleted
    done = cli("retention", "sweep", "--org", ORG, "-y", "-o", "json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["orgs"][0]["runs"] == 2


# -- expired data is invisible at once ------------------------------------------------------------
def test_expired_runs_sessions_and_audit_vanish_from_every_read_at_once(
    rt: Runtime, client: TestClient, root: dict[str, str], clock: Clock
) -> None:
    old = finished(rt, session="chat-1", n=2)
    rt.retention.set(ORG, {"runs_days": 30, "audit_days": 30}, actor=None)
    assert ids(rt.runs.list(ORG).items) == ids(reversed(old))  # not expired yet
    audit_before = client.get("/v1/admin/audit-logs", headers=root).json()["data"]
    assert len(audit_before) >= 3
    clock.days = 31
    new = run_at(rt, clock(), session="chat-2")  # written "today", as the clock sees it
    # HTTP: the old runs and their session are gone from listings and 404 by id, everywhere.
    listed = client.get("/v1/runs", headers=root).json()["data"]
    assert [r["id"] for r in listed] == [new.id]
    for run in old:
        for path in ("", "/events", "/events/replay"):
            assert client.get(f"/v1/runs/{run.id}{path}", headers=root).status_code == 404
        assert client.post(f"/v1/runs/{run.id}/cancel", headers=root).status_code == 404
        assert client.post(f"/v1/runs/{run.id}/retry", headers=root).status_code == 404
    assert client.get(f"/v1/runs/{new.id}/events", headers=root).status_code == 200
    sessions = [s["id"] for s in client.get("/v1/sessions", headers=root).json()["data"]]
    assert sessions == ["chat-2"]
    assert client.get("/v1/sessions/chat-1", headers=root).status_code == 404
    assert client.get("/v1/sessions/chat-2", headers=root).status_code == 200
    assert client.get("/v1/runs?session_id=chat-1", headers=root).json()["data"] == []
    # Every audit record so far was written more than 30 "days" ago.
    assert client.get("/v1/admin/audit-logs", headers=root).json()["data"] == []
    assert client.get("/v1/admin/audit-logs/export", headers=root).text == ""
    # ... and through the CLI (the local backend, a runtime of its own).
    assert [r["id"] for r in cli_data("runs", "list")] == [new.id]
    assert cli("runs", "show", old[0].id).exit_code == 1
    assert cli("runs", "events", old[0].id).exit_code == 1
    assert cli("runs", "retry", old[0].id).exit_code == 1
    assert [s["id"] for s in cli_data("sessions", "list")] == ["chat-2"]
    assert cli("sessions", "show", "chat-1").exit_code == 1
    assert cli_data("audit", "tail") == []
    # Nothing was deleted yet: the sweeper does that; verify still sees the whole log.
    assert rt.store.get_run(ORG, old[0].id).id == old[0].id
    whole = rt.audit.verify(ORG)
    assert whole.ok and whole.pruned == 0 and whole.count > len(audit_before)


def test_keep_last_runs_per_session_hides_then_deletes_the_older_runs(
    rt: Runtime, client: TestClient, root: dict[str, str]
) -> None:
    a = finished(rt, session="a", n=5)
    b = finished(rt, session="b", n=2)
    loose = finished(rt, n=2)  # no session: keep-last does not apply
    rt.retention.set(ORG, {"keep_last_runs_per_session": 2}, actor=None)
    visible = set(ids(a[-2:] + b + loose))
    assert set(ids(rt.runs.list(ORG, limit=100).items)) == visible
    listed = client.get("/v1/runs?session_id=a", headers=root).json()["data"]
    assert [r["id"] for r in listed] == ids(reversed(a[-2:]))
    # Paging with a small page still shows each visible run once.
    seen, cursor = [], None
    while True:
        page = rt.runs.list(ORG, limit=2, cursor=cursor)
        seen += ids(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(visible)
    counts = {
        s["id"]: s["run_count"] for s in client.get("/v1/sessions", headers=root).json()["data"]
    }
    assert counts == {"a": 2, "b": 2}  # a session counts only the runs it still shows
    assert client.get("/v1/sessions/a", headers=root).json()["run_count"] == 2
    for run in a[:3]:
        assert client.get(f"/v1/runs/{run.id}", headers=root).status_code == 404
    with pytest.raises(NotFound):
        rt.runs.events(ORG, a[0].id)
    report = rt.retention.sweep(ORG)
    assert (report.orgs[0].runs, report.orgs[0].error) == (3, None)
    remaining = {r.id for r in rt.store.list_runs(ORG, limit=100).items}
    assert remaining == visible
    assert rt.sessions.get(ORG, "a").run_count == 2


def test_queued_and_running_runs_never_expire(
    rt: Runtime, client: TestClient, root: dict[str, str], clock: Clock
) -> None:
    running = stored_run(rt, RunStatus.RUNNING, session="busy")
    queued = stored_run(rt, RunStatus.QUEUED, session="busy")
    done = finished(rt, session="busy", n=3)
    rt.retention.set(
        ORG, {"runs_days": 1, "events_days": 1, "keep_last_runs_per_session": 1}, actor=None
    )
    clock.days = 10
    listed = {r["id"] for r in client.get("/v1/runs", headers=root).json()["data"]}
    assert listed == {running.id, queued.id}
    assert client.get("/v1/sessions/busy", headers=root).json()["run_count"] == 2
    events = client.get(f"/v1/runs/{running.id}/events", headers=root).json()["data"]
    assert [e["seq"] for e in events] == [1, 2]  # the journal of a live run stays whole
    report = rt.retention.sweep(ORG)
    assert report.orgs[0].runs == len(done)
    kept = {r.id: r.status for r in rt.store.list_runs(ORG, limit=100).items}
    assert kept == {running.id: RunStatus.RUNNING, queued.id: RunStatus.QUEUED}
    assert len(rt.store.list_events(ORG, running.id)) == 2
    assert rt.store.get_session(ORG, "busy").id == "busy"


def test_events_expire_by_age_but_a_runs_newest_event_stays(
    rt: Runtime, client: TestClient, root: dict[str, str], clock: Clock
) -> None:
    # A long-lived run: created now, with events written over forty days, still running.
    run = stored_run(rt, RunStatus.RUNNING)
    start = datetime.now(UTC)
    for day in (1, 2, 35, 36):
        rt.store.append_event(
            ORG, run.id, "tool.call", {"day": day}, time=iso(start + timedelta(days=day))
        )
    short = finished(rt)[0]
    rt.retention.set(ORG, {"events_days": 30}, actor=None)
    clock.days = 40  # the cutoff is day 10
    assert len(client.get(f"/v1/runs/{run.id}/events", headers=root).json()["data"]) == 6
    rt.store.update_run(ORG, run.id, status=RunStatus.SUCCEEDED, finished_at=iso(start))
    rt.store.append_event(
        ORG, run.id, EventType.RUN_SUCCEEDED, {}, time=iso(start + timedelta(days=37))
    )
    # Finished: the events before day 10 are hidden at once; days 35-37 stay.
    data = client.get(f"/v1/runs/{run.id}/events", headers=root).json()["data"]
    assert [e["data"].get("day") for e in data] == [35, 36, None]
    # The short run's events are all older than the cutoff: only its terminal event is left,
    # so a follower of the finished run still ends.
    shown = client.get(f"/v1/runs/{short.id}/events", headers=root).json()["data"]
    assert [e["type"] for e in shown] == ["run.succeeded"]
    with client.stream(
        "GET", f"/v1/runs/{short.id}/events", headers={**root, "Accept": "text/event-stream"}
    ) as resp:
        frames = [line for line in resp.iter_lines() if line.startswith("event: ")]
    assert frames == ["event: run.succeeded"]
    replay = client.get(f"/v1/runs/{run.id}/events/replay", headers=root).text
    assert "event: tool.call" in replay and '"day":1' not in replay
    short_events = len(rt.store.list_events(ORG, short.id))
    batches = Batches()
    report = rt.retention.sweep(ORG, progress=batches)
    # created, started, day 1 and day 2 of the long run; all but the last of the short one.
    assert report.orgs[0].events == batches.total("events") == 4 + short_events - 1
    assert [e.data.get("day") for e in rt.store.list_events(ORG, run.id)] == [35, 36, None]
    assert [e.type for e in rt.store.list_events(ORG, short.id)] == ["run.succeeded"]
    assert all(rows <= BATCH for _, rows in batches.seen)


def test_the_sweeper_deletes_in_bounded_batches(rt: Runtime, clock: Clock) -> None:
    old = finished(rt, session="s", n=4)
    kept_other = finished(rt, OTHER, n=2)  # another org, without a policy
    events_before = sum(len(rt.store.list_events(ORG, r.id)) for r in old)
    rt.retention.set(ORG, {"runs_days": 30}, actor=None)
    clock.days = 31
    dry = rt.retention.sweep(ORG, dry_run=True)
    assert (dry.orgs[0].runs, dry.orgs[0].events, dry.orgs[0].sessions) == (4, events_before, 1)
    assert len(rt.store.list_runs(ORG, limit=100).items) == 4  # a dry run deletes nothing
    # Count the sweep's write transactions on the real store, and what each batch deleted.
    transactions = 0
    real = rt.store.transaction

    def counting() -> Any:
        nonlocal transactions
        transactions += 1
        return real()

    batches = Batches()
    rt.store.transaction = counting  # type: ignore[method-assign]
    try:
        report = rt.retention.sweep(ORG, progress=batches)
    finally:
        del rt.store.transaction  # back to the class's own
    org = report.orgs[0]
    assert (org.runs, org.events, org.sessions, org.error) == (4, events_before, 1, None)
    assert batches.seen and all(0 < rows <= BATCH for _, rows in batches.seen)
    assert batches.total("events") == events_before and batches.total("runs") == 4
    needed = -(-events_before // BATCH) + -(-4 // BATCH)
    assert org.batches >= needed and transactions >= needed
    assert rt.store.list_runs(ORG, limit=100).items == []
    with pytest.raises(NotFound):
        rt.store.get_session(ORG, "s")
    for run in old:
        with pytest.raises(NotFound):
            rt.store.list_events(ORG, run.id)
    assert ids(rt.store.list_runs(OTHER, limit=100).items) == ids(reversed(kept_other))
    # The receipt: counts and cutoffs, never content.
    receipt = [e for e in rt.audit.tail(ORG, limit=5) if e.action == "retention.sweep"][-1]
    assert receipt.details["runs"] == 4 and receipt.details["events"] == events_before
    assert CANARY not in json.dumps(receipt.to_dict())
    # A second sweep finds nothing and records nothing.
    again = rt.retention.sweep(ORG)
    assert again.orgs[0].deleted == 0
    assert rt.audit.tail(ORG, limit=1)[0].seq == receipt.seq


def test_sweeping_every_org_touches_only_orgs_with_a_policy(rt: Runtime, clock: Clock) -> None:
    rt.orgs.create("third")
    mine = finished(rt, n=2)
    other = finished(rt, OTHER, n=2)
    third = finished(rt, "third", n=1)
    rt.retention.set(OTHER, {"runs_days": 5}, actor=None)
    rt.retention.set("third", {"keep_last_runs_per_session": 1}, actor=None)  # no sessions
    clock.days = 6
    report = rt.retention.sweep()
    assert {o.org_id: o.runs for o in report.orgs} == {OTHER: 2, "third": 0}
    assert ids(rt.store.list_runs(ORG, limit=10).items) == ids(reversed(mine))
    assert rt.store.list_runs(OTHER, limit=10).items == []
    assert ids(rt.store.list_runs("third", limit=10).items) == ids(third)
    assert other  # made, then swept


def test_a_regional_process_sweeps_only_the_orgs_it_serves(
    env: dict[str, str], rt: Runtime, clock: Clock
) -> None:
    finished(rt, OTHER, n=1)
    rt.retention.set(OTHER, {"runs_days": 1}, actor=None)
    rt.residency.set(OTHER, "us", actor=None)
    clock.days = 2
    eu = Runtime(load_settings(env={**env, "AGENT_SDK_DATA_REGION": "eu"}, cwd=Path.cwd()))
    try:
        assert eu.retention.sweep().orgs == []  # another region's org: its own servers sweep it
    finally:
        eu.close(wait=False)
    assert len(rt.store.list_runs(OTHER, limit=10).items) == 1
    assert [o.runs for o in rt.retention.sweep().orgs] == [1]  # a process of every region


# -- the audit log --------------------------------------------------------------------------------
def test_pruning_the_audit_head_keeps_verify_green_and_catches_forgery(
    rt: Runtime, clock: Clock
) -> None:
    for i in range(9):  # enough records for two checkpoints (every 4)
        rt.retention.set(ORG, {"runs_days": 100 + i}, actor=None)
    rt.retention.set(ORG, {"audit_days": 30}, actor=None)
    before = rt.audit.verify(ORG)
    assert before.ok and before.count == 10 and before.checkpoints == 2
    clock.days = 31
    assert rt.audit.tail(ORG, limit=100) == []  # all expired (the newest is kept, but hidden)
    report = rt.retention.sweep(ORG)
    assert report.orgs[0].audit_records == 9  # all but the newest, in batches of 3
    anchor = rt.store.get_audit_anchor(ORG)
    assert anchor is not None and anchor.seq == 9
    after = rt.audit.verify(ORG)
    assert after.ok, after.reason
    assert (after.pruned, after.count) == (9, 2)  # record 10 and the sweep's receipt
    assert "removed by the retention policy" in after.summary()
    for i in range(5):  # the chain goes on from the anchor
        rt.retention.set(ORG, {"audit_days": 30, "runs_days": 1 + i}, actor=None)
    assert rt.audit.verify(ORG).ok
    # Cutting more records off the head, without an anchor the key signed, is caught.
    rt.store._exec("DELETE FROM audit_log WHERE org_id = ? AND seq = ?", (ORG, 10))
    broken = rt.audit.verify(ORG)
    assert not broken.ok and broken.first_bad_seq == 10
    # So is an anchor moved forward by someone who can write the database.
    rt.store._exec(
        "UPDATE audit_anchors SET seq = ?, head_hash = (SELECT hash FROM audit_log"
        " WHERE org_id = ? AND seq = ?) WHERE org_id = ?",
        (10, ORG, 11, ORG),
    )
    forged = rt.audit.verify(ORG)
    assert not forged.ok and "bad signature" in (forged.reason or "")
    # And removing the anchor brings back the plain "records were deleted".
    rt.store._exec("DELETE FROM audit_anchors WHERE org_id = ?", (ORG,))
    gone = rt.audit.verify(ORG)
    assert not gone.ok and gone.first_bad_seq == 1


def test_audit_pruning_through_the_cli_and_verify(env: dict[str, str], clock: Clock) -> None:
    for days in (400, 401, 402, 403, 404):
        cli_data("orgs", "retention", "set", "--audit-days", str(days), "-y")
    clock.days = 500
    result = cli("retention", "sweep", "--org", ORG, "-o", "json", "--yes")
    assert result.exit_code == 0, result.stderr
    swept = json.loads(result.stdout)
    assert swept["orgs"][0]["audit_records"] == 4
    assert "deleted" in result.stderr and "4 audit records" in result.stderr
    report = cli_data("audit", "verify")
    assert report["ok"] and report["pruned"] == 4


# -- the sweeper's edges --------------------------------------------------------------------------
def test_sweep_over_http_and_the_cli(
    rt: Runtime, client: TestClient, root: dict[str, str], clock: Clock
) -> None:
    old = finished(rt, n=2)
    other = finished(rt, OTHER, n=1)
    rt.retention.set(ORG, {"runs_days": 10}, actor=None)
    rt.retention.set(OTHER, {"runs_days": 10}, actor=None)
    clock.days = 11
    dry = client.post("/v1/admin/retention/sweep?dry_run=true", headers=root)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] and dry.json()["orgs"][0]["runs"] == 2
    assert len(rt.store.list_runs(ORG, limit=10).items) == 2
    done = client.post("/v1/admin/retention/sweep", headers=root).json()
    assert [(o["org_id"], o["runs"]) for o in done["orgs"]] == [(ORG, 2)]
    assert len(rt.store.list_runs(OTHER, limit=10).items) == 1  # only the acting org
    # The CLI without --org sweeps every org with a policy.
    result = cli("retention", "sweep", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert {o["org_id"]: o["runs"] for o in json.loads(result.stdout)["orgs"]} == {ORG: 0, OTHER: 1}
    assert "would delete" in result.stderr
    table = cli("retention", "sweep", "-o", "table", "--yes")
    assert table.exit_code == 0 and OTHER in table.stdout and "RUNS" in table.stdout
    assert rt.store.list_runs(OTHER, limit=10).items == []
    assert old and other


def test_an_unreadable_stored_policy_is_reported_and_others_still_swept(
    rt: Runtime, clock: Clock
) -> None:
    finished(rt, OTHER, n=1)
    rt.retention.set(OTHER, {"runs_days": 1}, actor=None)
    rt.store.set_org_setting(ORG, "retention", {"runs_days": "soon"})  # edited by hand
    clock.days = 2
    report = rt.retention.sweep()
    by_org = {o.org_id: o for o in report.orgs}
    assert by_org[ORG].error and "runs_days" in by_org[ORG].error
    assert by_org[OTHER].runs == 1 and by_org[OTHER].error is None
    assert rt.retention.policy(ORG) == RetentionPolicy()  # reads keep everything
    result = cli("retention", "sweep", "--yes")
    assert result.exit_code == 1 and "runs_days" in result.stderr


def test_the_server_sweeps_in_the_background(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setattr(retention_sweep, "FIRST_SWEEP_DELAY", 0.05)
    conf = load_settings(env={**env, "AGENT_SDK_RETENTION_SWEEP_INTERVAL": "0.1"}, cwd=Path.cwd())
    rt = Runtime(conf)
    try:
        with TestClient(create_app(conf, runtime=rt)):
            old = finished(rt, n=2)  # executed on the server's loop
            rt.retention.set(ORG, {"runs_days": 3}, actor=None)
            clock.days = 4
            deadline = time.monotonic() + 10
            while rt.store.list_runs(ORG, limit=10).items and time.monotonic() < deadline:
                time.sleep(0.05)
        assert rt.store.list_runs(ORG, limit=10).items == [], old
        receipt = rt.audit.tail(ORG, limit=1)[0]
        assert receipt.action == "retention.sweep" and receipt.actor == "system"
    finally:
        rt.close(wait=False)


def test_a_worker_sweeps_in_the_background(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    from agent_sdk.core.worker import Worker

    monkeypatch.setattr(retention_sweep, "FIRST_SWEEP_DELAY", 0.05)
    conf = load_settings(
        env={
            **env,
            "AGENT_SDK_RETENTION_SWEEP_INTERVAL": "0.1",
            "AGENT_SDK_EXECUTION_MODE": "queue",
        },
        cwd=Path.cwd(),
    )
    rt = Runtime(conf)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stop = asyncio.Event()
    try:
        rt.attach(loop)
        worker = Worker(rt, rt.queue, name="retention-test", poll=0.05)
        future = asyncio.run_coroutine_threadsafe(worker.run(stop), loop)
        old = finished(rt, n=2)  # executed by the worker
        rt.retention.set(ORG, {"runs_days": 3}, actor=None)
        clock.days = 4
        deadline = time.monotonic() + 10
        while rt.store.list_runs(ORG, limit=10).items and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.store.list_runs(ORG, limit=10).items == [], old
        loop.call_soon_threadsafe(stop.set)
        future.result(20)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        rt.close(wait=False)


def test_a_zero_interval_starts_no_sweeper(rt: Runtime) -> None:
    async def check() -> None:
        assert retention_sweep.start_sweeper(rt) is None

    asyncio.run(check())


# -- the global cap on events per run -------------------------------------------------------------
@pytest.fixture
def capped(env: dict[str, str]) -> Iterator[tuple[Runtime, TestClient, dict[str, str]]]:
    conf = load_settings(env={**env, "AGENT_SDK_EVENT_RETENTION_MAX_EVENTS": "4"}, cwd=Path.cwd())
    rt = Runtime(conf)
    with TestClient(create_app(conf, runtime=rt)) as client:
        yield rt, client, bearer(conf.admin_token_path.read_text().strip())
    rt.close(wait=True, timeout=10)


def test_the_event_cap_keeps_the_newest_events_and_readers_resume(
    capped: tuple[Runtime, TestClient, dict[str, str]],
) -> None:
    rt, client, root = capped
    script = [{"tool": "fs.list", "arguments": {"path": "."}}] * 4 + [{"text": "done"}]
    agent = {"name": "chatty", "model": "scripted", "script": script}
    run_id = client.post("/v1/runs", json={"agent": agent, "input": "x"}, headers=root).json()["id"]
    run = wait_done(rt, ORG, run_id)
    assert run.status is RunStatus.SUCCEEDED
    events = client.get(f"/v1/runs/{run_id}/events", headers=root).json()["data"]
    seqs = [e["seq"] for e in events]
    assert len(events) == 4 and events[-1]["type"] == "run.succeeded"
    assert seqs == list(range(seqs[0], seqs[0] + 4)) and seqs[0] > 1  # never renumbered
    # A reader resuming from a pruned seq continues at the first kept one, to the end.
    sse = {**root, "Accept": "text/event-stream", "Last-Event-ID": "2"}
    with client.stream("GET", f"/v1/runs/{run_id}/events", headers=sse) as resp:
        ids_seen = [int(line[4:]) for line in resp.iter_lines() if line.startswith("id: ")]
    assert ids_seen == seqs
    replay = client.get(f"/v1/runs/{run_id}/events/replay?after=1", headers=root).text
    assert [int(x[4:]) for x in replay.splitlines() if x.startswith("id: ")] == seqs
    after_all = client.get(f"/v1/runs/{run_id}/events?after={seqs[-1]}", headers=root)
    assert after_all.json()["data"] == []
    assert client.get(f"/v1/runs/{run_id}/events?after=-1", headers=root).status_code == 422
    # The CLI reads the same four.
    result = cli("runs", "events", run_id, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [e["seq"] for e in json.loads(result.stdout)] == seqs


# -- unit-level rules -----------------------------------------------------------------------------
def test_cutoffs_follow_the_policy() -> None:
    now = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    cut = RetentionPolicy(runs_days=30, audit_days=1, keep_last_runs_per_session=3).cutoffs(now)
    assert cut.runs_before == "2030-01-01T12:00:00.000000Z"
    assert cut.audit_before == "2030-01-30T12:00:00.000000Z"
    assert cut.events_before is None and cut.keep_last == 3
    assert cut.runs is not None and cut.runs.floor == _ids.id_floor(
        "run", datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    )
    assert not RetentionPolicy() and RetentionPolicy().cutoffs(now).runs is None
    assert RetentionPolicy.parse({"runs_days": None, "audit_days": 2}).audit_days == 2


def test_run_ids_order_like_their_creation_times() -> None:
    # The filters rely on it: an id floor is a creation-time bound.
    early = datetime(2020, 1, 1, tzinfo=UTC)
    floor = _ids.id_floor("run", early)
    ms = int((early - timedelta(milliseconds=1)).timestamp() * 1000)
    just_before = "run_" + _ids._encode((ms << 80) | secrets.randbits(80))
    assert just_before < floor < _ids.new_id("run")


def test_the_service_names_the_policy_setting_as_the_records_do() -> None:
    # core.retention spells the name out so that reads need not import the retention records.
    from agent_sdk.records.retention import SETTING

    assert retention_module.SETTING == SETTING
