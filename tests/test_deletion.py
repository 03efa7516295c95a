"""Erasure of runs and sessions (issue 6, part 2), on SQLite and on Postgres, through the HTTP API,
the CLI and the workers: what goes, what the audit log keeps, who may do it, and that nothing of a
deleted run survives in the database files or comes back from an attempt still executing it.

The store and backend contracts (tests/contracts/) hold the per-operation behaviour on every store
and backend; this module covers what crosses the layers."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.cli import keys as keys_cli
from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.worker import Worker
from agent_sdk.errors import NotFound
from agent_sdk.records import RunStatus
from agent_sdk.server.app import create_app
from agent_sdk.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's note about httpx2
    from starlette.testclient import TestClient

ORG = "default"
NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
runner = CliRunner()


def echo_agent() -> dict[str, Any]:
    """Puts the input everywhere a run stores text: a tool result (a file named after it, listed
    by fs.list), the model's answer and the run's output."""
    return {
        "name": "echo",
        "model": "scripted",
        "tools": ["fs.list"],
        "script": [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "echo {input}"}],
    }


def slow_agent(seconds: float) -> dict[str, Any]:
    return {"name": "slow", "model": "scripted", "script": [{"text": "late", "latency": seconds}]}


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


# -- both stores -----------------------------------------------------------------------------------
@pytest.fixture
def conf(engine: str, settings: Settings) -> Settings:
    if engine == "postgres":
        import os

        return settings.replace(
            storage_backend="postgres", database_url=os.environ["AGENT_SDK_DATABASE_URL"]
        )
    return settings


@pytest.fixture
def rt(conf: Settings) -> Iterator[Runtime]:
    runtime = Runtime(conf)
    try:
        yield runtime
    finally:
        runtime.close(wait=True, timeout=10)


@pytest.fixture
def client(conf: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(conf)) as c:
        yield c


@pytest.fixture
def root(conf: Settings, client: TestClient) -> dict[str, str]:
    """The bootstrap key: admin of `default`, with admin:platform."""
    return {"Authorization": f"Bearer {conf.admin_token_path.read_text().strip()}"}


def done(client: TestClient, run_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(1000):
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=headers).json()
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish")


def create(client: TestClient, headers: dict[str, str], **body: Any) -> str:
    body.setdefault("agent", NOOP)
    body.setdefault("input", "x")
    resp = client.post("/v1/runs", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    done(client, run_id, headers)
    return run_id


def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    return body


# -- HTTP ------------------------------------------------------------------------------------------
def test_after_deletion_every_route_answers_404(client: TestClient, root: dict[str, str]) -> None:
    run_id = create(client, root, session_id="s1")
    kept = create(client, root, session_id="s1")
    resp = client.delete(f"/v1/admin/runs/{run_id}", headers=root)
    assert resp.status_code == 200, resp.text
    assert resp.json()["kind"] == "run" and resp.json()["runs"] == 1

    sse = {**root, "Accept": "text/event-stream"}
    for method, path, headers in [
        ("get", f"/v1/runs/{run_id}", root),
        ("get", f"/v1/runs/{run_id}/events", root),
        ("get", f"/v1/runs/{run_id}/events", sse),
        ("get", f"/v1/runs/{run_id}/events?stream=true", root),
        ("get", f"/v1/runs/{run_id}/events/replay", root),
        ("get", f"/run/{run_id}/events/replay", root),
        ("post", f"/v1/runs/{run_id}/cancel", root),
        ("post", f"/v1/runs/{run_id}/retry", root),
        ("delete", f"/v1/admin/runs/{run_id}", root),
        ("delete", f"/admin/runs/{run_id}", root),  # the deprecated unversioned spelling
    ]:
        problem(client.request(method, path, headers=headers), 404)
    listed = client.get("/v1/runs", params={"session_id": "s1"}, headers=root).json()["data"]
    assert [r["id"] for r in listed] == [kept]
    assert client.get("/v1/sessions/s1", headers=root).json()["run_count"] == 1

    resp = client.delete("/v1/admin/sessions/s1", headers=root)
    assert resp.status_code == 200 and resp.json()["runs"] == 1 and resp.json()["sessions"] == 1
    problem(client.get("/v1/sessions/s1", headers=root), 404)
    problem(client.get(f"/v1/runs/{kept}", headers=root), 404)
    problem(client.delete("/v1/admin/sessions/s1", headers=root), 404)
    assert "s1" not in [s["id"] for s in client.get("/v1/sessions", headers=root).json()["data"]]
    assert kept not in [r["id"] for r in client.get("/v1/runs", headers=root).json()["data"]]


def test_deletion_needs_admin_orgs_and_never_reaches_another_org(
    client: TestClient, root: dict[str, str]
) -> None:
    def key(org: str, role: str) -> dict[str, str]:
        resp = client.post(
            "/v1/admin/api-keys",
            json={"name": role, "role": role},
            headers={**root, "X-Org-Id": org},
        )
        assert resp.status_code == 201, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}

    assert client.post("/v1/admin/orgs", json={"id": "org-b"}, headers=root).status_code == 201
    mine = create(client, root, session_id="shared")
    theirs = create(client, {**root, "X-Org-Id": "org-b"}, session_id="shared")
    viewer, operator, admin_b = key(ORG, "viewer"), key(ORG, "operator"), key("org-b", "admin")

    for headers in (viewer, operator):  # reading and running runs is not erasing them
        problem(client.delete(f"/v1/admin/runs/{mine}", headers=headers), 403)
        problem(client.delete("/v1/admin/sessions/shared", headers=headers), 403)
    forged = {"Authorization": "Bearer asdk_0000000000000000_" + "A" * 40}
    for headers in (forged, {}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        problem(client.delete(f"/v1/admin/runs/{mine}", headers=headers), 401)
    # Org B's admin: org A's run and session are simply not there.
    unknown = problem(
        client.delete("/v1/admin/runs/run_00000000000000000000000000", headers=admin_b), 404
    )
    foreign = problem(client.delete(f"/v1/admin/runs/{mine}", headers=admin_b), 404)
    assert foreign["detail"].replace(mine, "<id>") == unknown["detail"].replace(
        "run_00000000000000000000000000", "<id>"
    )
    problem(client.delete(f"/v1/admin/runs/{mine}", headers={**admin_b, "X-Org-Id": ORG}), 403)
    # Its own session of the same name is the only one it can erase.
    assert client.delete("/v1/admin/sessions/shared", headers=admin_b).json()["runs"] == 1
    assert client.get(f"/v1/runs/{mine}", headers=root).status_code == 200
    problem(client.get(f"/v1/runs/{theirs}", headers={**root, "X-Org-Id": "org-b"}), 404)
    # A platform admin acts in another org only by naming it.
    again = create(client, {**root, "X-Org-Id": "org-b"})
    resp = client.delete(f"/v1/admin/runs/{again}", headers={**root, "X-Org-Id": "org-b"})
    assert resp.status_code == 200 and resp.json()["org_id"] == "org-b"
    # The refusals and the failed attempts are audited in the caller's org, without content.
    log = client.get("/v1/admin/audit-logs", params={"limit": 1000}, headers=root).json()["data"]
    denied = [e for e in log if e["outcome"] == "denied" and "admin/runs" in e["action"]]
    assert len(denied) >= 2


@pytest.mark.parametrize(
    "odd",
    ["..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "a%2Fb", "%00", "x" * 2000, "run_%25", "%2A",
     "' OR '1'='1", "run_ with space"],
)  # fmt: skip
def test_odd_ids_are_not_found(client: TestClient, root: dict[str, str], odd: str) -> None:
    run_id = create(client, root, session_id="s")
    for kind in ("runs", "sessions"):
        resp = client.delete(f"/v1/admin/{kind}/{odd}", headers=root)
        # A NUL is text no store can hold: refused as invalid input before any look-up.
        expected = 422 if odd == "%00" else 404
        assert resp.status_code == expected, (kind, odd, resp.status_code, resp.text[:200])
    assert client.get(f"/v1/runs/{run_id}", headers=root).status_code == 200
    assert client.get("/v1/sessions/s", headers=root).json()["run_count"] == 1


# -- what stays behind -----------------------------------------------------------------------------
def _dump_tables(conf: Settings) -> str:
    """Every row of every table of the test's Postgres schema, as pg_dump writes them."""
    query = parse_qs(urlsplit(conf.store.database_url).query)
    schema = query["options"][0].split("=", 1)[1]
    url = conf.store.database_url.split("?", 1)[0]
    out = subprocess.run(
        ["pg_dump", "--data-only", "--schema", schema, "--dbname", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def _files(conf: Settings) -> bytes:
    path = conf.store.sqlite_path
    return b"".join(
        p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )


def _at_rest(conf: Settings) -> bytes:
    if conf.store.backend == "postgres":
        return _dump_tables(conf).encode()
    return _files(conf)


def test_nothing_of_a_deleted_run_survives_at_rest(
    conf: Settings, client: TestClient, root: dict[str, str]
) -> None:
    secret = canary()
    Path(f"{secret}.txt").write_text("a file the tool lists")
    run_id = create(
        client,
        {**root, "Idempotency-Key": uuid.uuid4().hex},  # its claim stores the run and input
        agent=echo_agent(),
        input=f"my card is {secret}",
        session_id="chat",
        metadata={"note": secret},
    )
    run = client.get(f"/v1/runs/{run_id}", headers=root).json()
    assert secret in run["output"]
    events = client.get(f"/v1/runs/{run_id}/events", headers=root).json()["data"]
    assert any(e["type"] == "tool.result" and secret in json.dumps(e) for e in events)
    if conf.store.backend == "sqlite":
        SQLiteStore(conf.store.sqlite_path).purge_deleted()  # the rows reach the main file first
    assert secret.encode() in _at_rest(conf)  # the check below could fail

    assert client.delete("/v1/admin/sessions/chat", headers=root).status_code == 200

    assert secret.encode() not in _at_rest(conf)
    export = client.get("/v1/admin/audit-logs/export", headers=root).text
    assert secret not in export
    [record] = [json.loads(line) for line in export.splitlines() if '"sessions.delete"' in line]
    assert record["target"] == "chat" and record["details"]["runs"] == 1


def test_without_secure_delete_sqlite_would_keep_the_text(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control of the test above: the same erasure on a connection with secure_delete off
    leaves the text in the file's free space, which is why the store turns it on."""
    conf = settings  # SQLite
    connect = SQLiteStore._connect

    def insecure(self: SQLiteStore) -> Any:
        db = connect(self)
        db.execute("PRAGMA secure_delete=OFF")
        return db

    monkeypatch.setattr(SQLiteStore, "_connect", insecure)
    rt = Runtime(conf)
    try:
        secret = canary()
        run = rt.runs.create(ORG, NOOP, f"input {secret} " + "x" * 5000)
        rt.executor.wait_idle(10)
        rt.store.purge_deleted()  # type: ignore[attr-defined]
        rt.runs.delete(ORG, run.id)
        assert secret.encode() in _files(conf)
    finally:
        rt.close()


# -- runs that are executing -----------------------------------------------------------------------
class WorkerThread:
    """A queue-mode worker on its own loop and runtime, as in a separate worker process."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = Runtime(settings)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Runtime:
        self.thread.start()
        self.runtime.attach(self.loop)
        worker = Worker(self.runtime, self.runtime.queue, name="eraser-test", poll=0.05)
        self.future = asyncio.run_coroutine_threadsafe(worker.run(self.stop), self.loop)
        return self.runtime

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.runtime.close(wait=False)


def _drained(rt: Runtime, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while rt.queue.depth().total:
        assert time.monotonic() < deadline, rt.queue.depth()
        time.sleep(0.05)


def test_a_worker_executing_a_deleted_run_stops_and_drops_its_job(
    conf: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent_sdk")
    queued = conf.replace(execution_mode="queue")
    api = Runtime(queued)  # the server: it enqueues, and erases; the worker is elsewhere
    try:
        with WorkerThread(queued) as worker:
            run = api.runs.create(ORG, slow_agent(30), "long")
            deadline = time.monotonic() + 10
            while api.runs.get(ORG, run.id).status is not RunStatus.RUNNING:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            api.runs.delete(ORG, run.id)
            _drained(api)  # the attempt noticed within a cancel check, ended, and acked
            assert worker.executor.in_flight() == 0
        with pytest.raises(NotFound):
            api.runs.get(ORG, run.id)
        with pytest.raises(NotFound):
            api.store.list_events(ORG, run.id)
    finally:
        api.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "crashed" not in caplog.text and "Traceback" not in caplog.text


def test_a_queued_job_of_a_deleted_run_is_skipped(conf: Settings) -> None:
    queued = conf.replace(execution_mode="queue")
    api = Runtime(queued)
    try:
        runs = [api.runs.create(ORG, NOOP, str(i), session_id="batch") for i in range(3)]
        assert api.queue.depth().total == 3
        assert api.sessions.delete(ORG, "batch").runs == 3
        with WorkerThread(queued):
            _drained(api)
        for run in runs:
            with pytest.raises(NotFound):
                api.runs.get(ORG, run.id)
        assert api.runs.list(ORG).items == []
    finally:
        api.close()


def test_an_inline_run_is_stopped_at_once_when_deleted(rt: Runtime) -> None:
    run = rt.runs.create(ORG, slow_agent(30), "long")
    deadline = time.monotonic() + 60
    while rt.runs.get(ORG, run.id).status is not RunStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    rt.runs.delete(ORG, run.id)
    assert rt.executor.wait_idle(20)
    assert time.monotonic() - started < 10  # cancelled, not its 30 s wait waited out
    with pytest.raises(NotFound):
        rt.runs.get(ORG, run.id)


def test_a_follower_of_a_deleted_run_sees_its_stream_end(rt: Runtime) -> None:
    run = rt.runs.create(ORG, slow_agent(30), "long")

    async def follow() -> list[str]:
        seen = []
        async for event in rt.runs.stream(ORG, run.id):
            seen.append(event.type)
            if event.type == "run.started":
                await asyncio.to_thread(rt.runs.delete, ORG, run.id)
        return seen

    seen = asyncio.run_coroutine_threadsafe(follow(), rt.executor.loop).result(15)
    assert seen[:2] == ["run.created", "run.started"]
    with pytest.raises(NotFound):
        rt.runs.get(ORG, run.id)


@pytest.mark.slow  # hundreds of runs
# -- big sessions ----------------------------------------------------------------------------------
def test_a_session_with_many_runs_goes_in_one_erasure(rt: Runtime) -> None:
    from agent_sdk.ids import new_id, utcnow
    from agent_sdk.records import Run

    store = rt.store
    ids = []
    for i in range(300):
        now = utcnow()
        run = Run(new_id("run"), ORG, "a", RunStatus.SUCCEEDED, f"in {i}", now, now, "big")
        store.insert_run(run)
        ids.append(run.id)
        for j in range(4):
            store.append_event(ORG, run.id, "tool.result", {"i": i, "j": j})
    other = rt.runs.create(ORG, NOOP, "other", session_id="small")
    rt.executor.wait_idle(10)

    deletion = rt.sessions.delete(ORG, "big")

    assert (deletion.runs, deletion.events, deletion.sessions) == (300, 1200, 1)
    assert [r.id for r in rt.runs.list(ORG, limit=1000).items] == [other.id]
    log = rt.audit.tail(ORG, limit=1000)
    assert [e.details for e in log if e.action == "sessions.delete"] == [
        {"runs": 300, "events": 1200, "idempotency_keys": 0, "sessions": 1}
    ]


# -- CLI -------------------------------------------------------------------------------------------
def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(cli_app, list(args), input=input)


def _new_runs(n: int, session: str | None = None) -> list[str]:
    ids = []
    for i in range(n):
        args = ["runs", "create", "-a", "demo", "-i", f"in {i}", "--wait", "-o", "json"]
        result = cli(*args, *(["-s", session] if session else []))
        assert result.exit_code == 0, result.stderr
        ids.append(json.loads(result.stdout)["id"])
    return ids


def test_cli_runs_delete_asks_and_refuses_without_a_terminal(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [run_id] = _new_runs(1)
    refused = cli("runs", "delete", run_id)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    monkeypatch.setattr(keys_cli, "_interactive", lambda: True)
    declined = cli("runs", "delete", run_id, input="n\n")
    assert declined.exit_code == 3 and run_id in declined.stderr
    assert cli("runs", "show", run_id).exit_code == 0
    assert cli("runs", "delete", run_id, "--no-input").exit_code == 2
    accepted = cli("runs", "delete", run_id, "-o", "json", input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    [receipt] = json.loads(accepted.stdout[accepted.stdout.index("[") :])
    assert receipt["id"] == run_id and receipt["events"] > 0
    assert cli("runs", "show", run_id).exit_code == 1


def test_cli_deletes_many_runs_and_reports_the_missing(engine: str) -> None:
    a, b = _new_runs(2)
    result = cli("runs", "delete", a, "nope", b, a, "--yes", "-o", "json")
    assert result.exit_code == 1
    assert [d["id"] for d in json.loads(result.stdout)] == [a, b]
    assert "nope" in result.stderr and "1 of 3 runs not found" in result.stderr
    for run_id in (a, b):
        assert cli("runs", "show", run_id).exit_code == 1


def test_cli_sessions_delete(engine: str) -> None:
    ids = _new_runs(3, session="chat-7")
    assert cli("sessions", "delete", "chat-7").exit_code == 2
    result = cli("sessions", "delete", "chat-7", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    receipt = json.loads(result.stdout)
    assert (receipt["kind"], receipt["runs"], receipt["sessions"]) == ("session", 3, 1)
    assert cli("sessions", "show", "chat-7").exit_code == 1
    assert all(cli("runs", "show", i).exit_code == 1 for i in ids)
    table = cli("sessions", "delete", "chat-7", "--yes", "-o", "table")
    assert table.exit_code == 1 and "not found" in table.stderr
    audit = json.loads(cli("audit", "tail", "-o", "json").stdout)
    assert [e["target"] for e in audit if e["action"] == "sessions.delete"] == ["chat-7"]


def test_cli_against_a_server(conf: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real = http.HttpBackend
    with TestClient(create_app(conf)) as client:
        monkeypatch.setattr(http, "HttpBackend", lambda s, **kw: real(s, client=client, **kw))
        monkeypatch.setenv("AGENT_SDK_API_KEY", conf.admin_token_path.read_text().strip())
        server = ["--server", "http://testserver"]
        run_id = json.loads(
            cli(
                "runs", "create", "-a", "demo", "-i", "hi", "-s", "s9", "-w", "-o", "json", *server
            ).stdout
        )["id"]
        result = cli("runs", "delete", run_id, "--yes", "-o", "json", *server)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)[0]["id"] == run_id
        again = cli("runs", "delete", run_id, "--yes", *server)
        assert again.exit_code == 1 and "not found" in again.stderr
        result = cli("sessions", "delete", "s9", "--yes", "-o", "json", *server)
        assert result.exit_code == 0 and json.loads(result.stdout)["runs"] == 0
        assert cli("sessions", "show", "s9", *server).exit_code == 1
