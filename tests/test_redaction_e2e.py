"""PII redaction on its real path, on SQLite and on Postgres (the ``postgres_url`` fixture): runs
written through the HTTP API (an in-process server) and the CLI, read back every way (show,
list, the events page, the SSE stream, the replay), and the raw database inspected (the SQLite
file and its WAL after a checkpoint; every Postgres table copied out, and ``pg_dump`` when it is
installed). Plus logs, org policies that apply to their org only, and hostile admin requests.

Canaries are random per run of the suite, so no earlier test or file can make a check pass; a
control test shows the same inspection finds them when redaction is off.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from contracts.backend_contract import finished
from typer.testing import CliRunner, Result

from agent_sdk.backend.http import HttpBackend
from agent_sdk.cli.main import app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.governance import redact_logs
from agent_sdk.governance.redact_checks import iban_ok, luhn_ok
from agent_sdk.records import RunStatus

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's note about httpx2
    from starlette.testclient import TestClient

TAG = uuid.uuid4().hex[:10]
_rng = random.Random(TAG)


def _card() -> str:
    body = "4" + "".join(_rng.choice("0123456789") for _ in range(14))
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def _iban() -> str:
    bban = "".join(_rng.choice("0123456789") for _ in range(18))
    return next(f"DE{c:02d}{bban}" for c in range(100) if iban_ok(f"DE{c:02d}{bban}"))


EMAIL = f"canary.{TAG}@example.com"
META_EMAIL = f"meta.{TAG}@example.net"
TOOL_EMAIL = f"tool.{TAG}@example.org"
CARD = _card()
IBAN = _iban()
PHONE = f"+44 20 7946 {_rng.randint(1000, 9999)}"
CANARIES = (TAG, CARD, IBAN, PHONE)  # every e-mail holds TAG

runner = CliRunner()


# -- deployments ---------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/agent-sdk.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def env_for(url: str, *, enabled: bool = True) -> dict[str, str]:
    values = {"AGENT_SDK_DATABASE_URL": url, "AGENT_SDK_PII_REDACTION_ENABLED": str(enabled)}
    if url.startswith("postgres"):
        values["AGENT_SDK_STORAGE_BACKEND"] = "postgres"
    return values


@pytest.fixture
def settings(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Redaction on for this test's database, in the environment the CLI reads too."""
    for name, value in env_for(db_url).items():
        monkeypatch.setenv(name, value)
    return load_settings(env=dict(os.environ), cwd=Path.cwd())


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from agent_sdk.server.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def token(settings: Settings) -> str:
    return settings.admin_token_path.read_text().strip()


def api(settings: Settings, client: TestClient, org: str | None = None) -> HttpBackend:
    return HttpBackend(settings.replace(org_id=org), api_key=token(settings), client=client)


def bearer(value: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", **extra}


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--local"], input=input)


def data(*args: str, input: str | None = None) -> Any:
    result = cli(*args, "-o", "json", input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def dump(url: str) -> bytes:
    """Every byte a copy of the database would hold."""
    if url.startswith("sqlite:"):
        path = Path(url[len("sqlite:///") :])
        db = sqlite3.connect(path, isolation_level=None)
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, "a reader kept the WAL from being checkpointed"
        finally:
            db.close()
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    import psycopg

    out = bytearray()
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            )
        ]
        assert {"runs", "events", "org_settings"} <= set(tables)
        for table in tables:
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                for block in copy:
                    out += bytes(block)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is not None:
        parts = urlsplit(url)
        schema = unquote(dict(parse_qsl(parts.query))["options"]).split("search_path=", 1)[1]
        done = subprocess.run(
            [pg_dump, "--data-only", "--schema", schema, "--dbname", url.split("?", 1)[0]],
            capture_output=True,
            check=True,
            timeout=60,
        )
        out += done.stdout
    return bytes(out)


def pii_spec() -> dict[str, Any]:
    """An agent that reads a file holding TOOL_EMAIL and PHONE (they exist only at run time, in
    the tool's result), and answers with its input, what it read, and an IBAN from its script."""
    Path("notes.txt").write_text(f"ring {PHONE} or mail {TOOL_EMAIL}\n")
    return {
        "name": "pii",
        "model": "scripted",
        "tools": ["fs.read"],
        "script": [
            {"tool": "fs.read", "arguments": {"path": "notes.txt"}},
            {"text": "{input} / {tool_result} / pay to " + IBAN},
        ],
    }


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, canary


# -- the canary tests -----------------------------------------------------------------------------
def test_pii_is_redacted_before_it_is_stored_and_every_read_sees_placeholders(
    settings: Settings, client: TestClient, db_url: str
) -> None:
    backend = api(settings, client)
    text, key = f"I am {EMAIL}, card {CARD}", f"key-{uuid.uuid4()}"
    run = backend.create_run(
        pii_spec(), text, metadata={"contact": META_EMAIL}, idempotency_key=key
    )
    done = finished(backend, run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.input == "I am [EMAIL], card [CARD]"
    assert done.metadata == {"contact": "[EMAIL]"}
    assert (
        done.output == "I am [EMAIL], card [CARD] / ring [PHONE] or mail [EMAIL]\n / pay to [IBAN]"
    )
    events = backend.list_events(run.id)
    shown = json.dumps([e.to_dict() for e in events])
    assert_clean(shown)
    assert "[PHONE]" in shown and "[IBAN]" in shown  # the tool.result and model.response events
    assert_clean(json.dumps([e.to_dict() for e in backend.follow_events(run.id)]))
    replay = client.get(f"/v1/runs/{run.id}/events/replay", headers=bearer(token(settings)))
    assert replay.status_code == 200 and "[PHONE]" in replay.text
    assert_clean(replay.text)
    assert_clean(json.dumps([r.to_dict() for r in backend.list_runs().items]))
    # The same request again (an idempotent retry) answers with the stored, redacted run.
    again = backend.create_run(
        pii_spec(), text, metadata={"contact": META_EMAIL}, idempotency_key=key
    )
    assert (again.id, again.input) == (run.id, done.input)

    raw = dump(db_url)
    assert run.id.encode() in raw and b"[EMAIL]" in raw  # the dump is the data
    for canary in CANARIES:
        assert canary.encode() not in raw, canary


def test_the_same_inspection_finds_the_canaries_when_redaction_is_off(db_url: str) -> None:
    """The control: the dump above would show plaintext if there were any."""
    rt = Runtime(load_settings(env={**os.environ, **env_for(db_url, enabled=False)}))
    try:
        run = rt.runs.create("default", pii_spec(), f"I am {EMAIL}, card {CARD}")
        rt.executor.wait_idle(10)
        assert rt.runs.get("default", run.id).status is RunStatus.SUCCEEDED
    finally:
        rt.close()
    raw = dump(db_url)
    for canary in CANARIES:
        assert canary.encode() in raw, canary


def test_the_cli_stores_and_shows_redacted_runs(settings: Settings, db_url: str) -> None:
    spec = Path("agent.json")
    spec.write_text(json.dumps(pii_spec()))
    run = data(
        "runs", "create", "--agent-file", str(spec), "--input", f"mail {EMAIL}",
        "--metadata", f"card={CARD}", "--wait",
    )  # fmt: skip
    assert run["status"] == "succeeded", run
    assert run["input"] == "mail [EMAIL]" and run["metadata"] == {"card": "[CARD]"}
    shown = data("runs", "show", run["id"])
    assert shown["output"].startswith("mail [EMAIL] / ring [PHONE]")
    events = data("runs", "events", run["id"])
    assert_clean(json.dumps(events)) and any("[IBAN]" in json.dumps(e) for e in events)
    raw = dump(db_url)
    for canary in CANARIES:
        assert canary.encode() not in raw, canary


def test_a_failed_run_stores_its_error_redacted(settings: Settings) -> None:
    rt = Runtime(settings)
    try:
        boom = {
            "name": "boom",
            "model": "scripted",
            "script": [{"error": f"upstream said {EMAIL}"}],
        }
        run = rt.runs.create("default", boom, "x")
        rt.executor.wait_idle(10)
        failed = rt.runs.get("default", run.id)
        assert failed.status is RunStatus.FAILED
        assert "[EMAIL]" in json.dumps(failed.error)
        assert_clean(json.dumps([failed.to_dict(), *(e.to_dict() for e in rt.runs.events(
            "default", run.id))]))  # fmt: skip
    finally:
        rt.close()


# -- logs -----------------------------------------------------------------------------------------
def test_the_server_redacts_every_log_record_while_it_runs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from agent_sdk.server.app import create_app

    log = logging.getLogger("agent_sdk.test.redaction")
    with caplog.at_level(logging.INFO), TestClient(create_app(settings)):
        assert redact_logs.installed()
        log.warning("user %s paid with %s", EMAIL, CARD)
        try:
            raise ValueError(f"bad iban {IBAN}")
        except ValueError:
            log.exception("request from %s failed", "10.1.2.3")
        logging.getLogger("uvicorn.error").error("Authorization: Bearer %s", "abc123def456ghi")
    assert not redact_logs.installed()  # stopped with the app
    log.warning("after shutdown %s", EMAIL)
    texts = [caplog.handler.format(r) for r in caplog.records if r.name != "asyncio"]
    during, after = texts[:-1], texts[-1]
    assert "user [EMAIL] paid with [CARD]" in during[0]
    assert "request from [IP] failed" in during[1] and "bad iban [IBAN]" in during[1]
    assert "Bearer [BEARER_TOKEN]" in during[2]
    for text in during:
        assert_clean(text)
    assert EMAIL in after


def test_the_cli_redacts_its_logs_when_redaction_is_on(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_sdk.cli import context

    seen: list[bool] = []
    real = context.CLIContext.close

    def close(self: context.CLIContext) -> None:
        seen.append(redact_logs.installed())
        logging.getLogger("agent_sdk.test.cli").warning("closing for %s", EMAIL)
        real(self)

    monkeypatch.setattr(context.CLIContext, "close", close)
    with caplog.at_level(logging.WARNING):
        data("orgs", "redaction", "show")
    assert seen == [True] and not redact_logs.installed()
    assert [r.getMessage() for r in caplog.records] == ["closing for [EMAIL]"]


# -- org policies through the API -----------------------------------------------------------------
def test_an_orgs_custom_patterns_apply_to_its_runs_only(
    settings: Settings, client: TestClient
) -> None:
    root = api(settings, client)
    root.create_org("acme")
    root.create_org("globex")
    acme, globex = api(settings, client, "acme"), api(settings, client, "globex")
    acme.set_redaction_pattern("employee_id", r"EMP-\d{6}")
    text = f"EMP-{TAG[:6].translate(str.maketrans('abcdef', '123456'))} mailed {EMAIL}"
    a = finished(acme, acme.create_run("demo", text).id)
    g = finished(globex, globex.create_run("demo", text).id)
    assert a.input.startswith("[EMPLOYEE_ID] mailed [EMAIL]")
    assert g.input.startswith("EMP-") and g.input.endswith("mailed [EMAIL]")
    assert acme.preview_redaction(text).findings == {"employee_id": 1, "email": 1}
    assert globex.get_redaction().policy.patterns == ()


def test_hostile_admin_requests(settings: Settings, client: TestClient) -> None:
    root = bearer(token(settings))
    assert client.post("/v1/admin/orgs", json={"id": "org-b"}, headers=root).status_code == 201
    made = client.post(
        "/v1/admin/api-keys", json={"name": "b-admin", "role": "admin"},
        headers={**root, "X-Org-Id": "org-b"},
    )  # fmt: skip
    b_admin = bearer(made.json()["token"])
    viewer = client.post("/v1/admin/api-keys", json={"name": "v", "role": "viewer"}, headers=root)
    as_viewer = bearer(viewer.json()["token"])
    put = {"regex": r"EMP-\d{6}"}
    assert client.put("/v1/admin/redaction/patterns/emp", json=put, headers=root).status_code == 200

    def problem(resp: Any, status: int) -> dict[str, Any]:
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = resp.json()
        return body

    # Bad regexes and oversized values: 422, nothing stored.
    bad = [{"regex": "("}, {"regex": r"(a+)+$"}, {"regex": "x" * 5000}, {"regex": "x" * 600},
           {"regex": "EMP", "placeholder": "<script>"}, {"regex": "EMP", "extra": 1}]  # fmt: skip
    for body in bad:
        problem(client.put("/v1/admin/redaction/patterns/evil", json=body, headers=root), 422)
    problem(client.put("/v1/admin/redaction", json={"disabled": ["nope"]}, headers=root), 422)
    problem(client.post("/v1/admin/redaction/preview", json={"text": "x" * 150_000},
                        headers=root), 422)  # fmt: skip
    huge = {"text": "a@b.io " * 200_000}  # over AGENT_SDK_MAX_BODY_BYTES
    problem(client.post("/v1/admin/redaction/preview", json=huge, headers=root), 413)
    # Names that try to reach another route or resource.
    for name in ("..%2F..%2Fadmin", "EMP", "a" * 65, "email"):
        resp = client.put(f"/v1/admin/redaction/patterns/{name}", json=put, headers=root)
        assert resp.status_code in (404, 422), (name, resp.status_code)
    assert [p["name"] for p in client.get("/v1/admin/redaction", headers=root).json()["patterns"]
            ] == ["emp"]  # fmt: skip
    # Another org's admin: its own org has no "emp" (404, as for any unknown name), and it may
    # not name org default (403, like every org-scoped admin route).
    problem(client.delete("/v1/admin/redaction/patterns/emp", headers=b_admin), 404)
    assert client.get("/v1/admin/redaction", headers=b_admin).json()["patterns"] == []
    problem(client.get("/v1/admin/redaction", headers={**b_admin, "X-Org-Id": "default"}), 403)
    # Not an admin, no credential, a forged one.
    problem(client.get("/v1/admin/redaction", headers=as_viewer), 403)
    problem(client.put("/v1/admin/redaction", json={}, headers=as_viewer), 403)
    problem(client.get("/v1/admin/redaction"), 401)
    forged = "asdk_" + "A" * 16 + "_" + "B" * 38
    problem(client.get("/v1/admin/redaction", headers=bearer(forged)), 401)
    # Still exactly one pattern, and the refusals were audited without their bodies.
    assert client.get("/v1/admin/redaction", headers=root).json()["patterns"][0]["name"] == "emp"
    log = client.get("/v1/admin/audit-logs?limit=1000", headers=root).json()["data"]
    assert "(a+)+" not in json.dumps(log)


def test_the_unversioned_path_answers_deprecated(settings: Settings, client: TestClient) -> None:
    resp = client.get("/admin/redaction", headers=bearer(token(settings)))
    assert resp.status_code == 200 and resp.headers["X-API-Deprecated"] == "true"
    assert (
        "/v1/admin/redaction" in client.get("/openapi.json", headers=bearer(token(settings))).text
    )


# -- queue mode: a worker writes what it executes redacted too ----------------------------------
def test_a_worker_in_queue_mode_stores_its_runs_redacted(settings: Settings, db_url: str) -> None:
    import asyncio
    import threading

    from agent_sdk.core.worker import Worker

    queued = settings.replace(execution_mode="queue", queue_backend="sqlite")
    api_side = Runtime(queued)  # creates and enqueues; executes nothing
    api_side.redaction.set_pattern("default", "order_ref", r"ORD-\d{6}")
    run = api_side.runs.create("default", pii_spec(), f"{EMAIL} asks about ORD-123456")
    worker_side = Runtime(queued)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        worker_side.attach(loop)
        worker = Worker(worker_side, worker_side.queue, name="redacting", poll=0.05)
        future = asyncio.run_coroutine_threadsafe(worker.run(stop), loop)
        done = finished_in(api_side, run.id)
        loop.call_soon_threadsafe(stop.set)
        future.result(20)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        worker_side.close(wait=False)
        api_side.close()
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.output is not None and done.output.startswith(
        "[EMAIL] asks about [ORDER_REF] / ring"
    )
    raw = dump(db_url)
    for canary in CANARIES:
        assert canary.encode() not in raw, canary


def finished_in(rt: Runtime, run_id: str, timeout: float = 20) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rt.runs.get("default", run_id)
        if run.status.terminal:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")
