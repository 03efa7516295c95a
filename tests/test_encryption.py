"""Encryption at rest on its real path: SQLite files and Postgres schemas (the ``postgres_url``
fixture), written through the HTTP API (an in-process server), the CLI and the runtime, then
read back both ways and inspected raw: the database file bytes after a WAL checkpoint, and every
table of the Postgres schema dumped with COPY (and pg_dump when it is installed).

Canaries are random per run of the suite, so no earlier test or file can make a check pass."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import threading
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
from agent_sdk.backend.local import LocalBackend
from agent_sdk.cli.main import app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from agent_sdk.governance.envelope import (
    DecryptionFailed,
    EnvelopeCodec,
    load_master_key,
    parse_master_key,
)
from agent_sdk.records import RunStatus
from agent_sdk.records.sealed import SEALED_PREFIX
from agent_sdk.store import open_store
from agent_sdk.store.sealing import SHREDDED_JSON, SHREDDED_TEXT

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's note about httpx2
    from starlette.testclient import TestClient

MASTER = base64.b64encode(os.urandom(32)).decode()
OTHER_MASTER = base64.b64encode(os.urandom(32)).decode()
TAG = uuid.uuid4().hex[:12]
INPUT = f"CANARY-INPUT-{TAG}"
MODEL = f"CANARY-MODEL-{TAG}"
TOOL = f"CANARY-TOOL-{TAG}"
META = f"CANARY-META-{TAG}"
SESSION_META = f"CANARY-SESSION-{TAG}"
CANARIES = (INPUT, MODEL, TOOL, META, SESSION_META)

runner = CliRunner()


# -- deployments ---------------------------------------------------------------------------------
class Raw:
    """The database under the store, through its own driver: what a stolen copy would show."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:")

    @property
    def path(self) -> Path:
        return Path(self.url[len("sqlite:///") :])

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.sqlite:
            with sqlite3.connect(self.path) as db:
                return db.execute(sql, params).fetchall()
        with self._pg() as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        if self.sqlite:
            db = sqlite3.connect(self.path, isolation_level=None)
            try:
                return db.execute(sql, params).rowcount
            finally:
                db.close()
        with self._pg() as conn:
            return int(conn.execute(sql.replace("?", "%s"), params).rowcount)

    def dump(self) -> bytes:
        """Every byte a copy of the database would hold."""
        if self.sqlite:
            db = sqlite3.connect(self.path, isolation_level=None)
            try:
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0, "a reader kept the WAL from being checkpointed"
            finally:
                db.close()
            files = [self.path, Path(f"{self.path}-wal")]
            return b"".join(p.read_bytes() for p in files if p.exists())
        out = bytearray()
        with self._pg() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema() ORDER BY table_name"
                )
            ]
            assert "runs" in tables and "events" in tables
            for table in tables:
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                    for block in copy:
                        out += bytes(block)
        return bytes(out) + self._pg_dump()

    def table_files(self, table: str) -> bytes | None:
        """The bytes of a Postgres table's heap file on disk (None where the data directory
        cannot be read from here); SQLite's whole file is what dump() reads anyway."""
        with self._pg() as conn:
            conn.execute("CHECKPOINT")
            (base,) = conn.execute("SHOW data_directory").fetchone()
            (rel,) = conn.execute("SELECT pg_relation_filepath(%s)", (table,)).fetchone()
        try:
            return Path(base, rel).read_bytes()
        except OSError:
            return None

    def scrubbed_table_file(self, table: str, gone: list[bytes]) -> bytes | None:
        """The table's file once ``gone`` is out of it. Postgres keeps an old row version while
        any transaction of this database may still see it (other sessions share the server),
        so VACUUM FULL is retried for a while; None when the file cannot be read, or when an
        older snapshot of another session still pins the version (the destroy's own VACUUM did
        what it could: the reason is outside this test)."""
        import time

        deadline = time.monotonic() + 15
        while True:
            files = self.table_files(table)
            if files is None or not any(value in files for value in gone):
                return files
            if time.monotonic() > deadline:
                pinned = self.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL"
                )[0][0]
                assert pinned, "nothing pins the old row version, yet it is still on disk"
                return None
            self.execute(f'VACUUM FULL "{table}"')
            time.sleep(0.2)

    def _pg_dump(self) -> bytes:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            return b""
        parts = urlsplit(self.url)
        options = dict(parse_qsl(parts.query)).get("options", "")
        schema = unquote(options).split("search_path=", 1)[1]
        base = self.url.split("?", 1)[0]
        done = subprocess.run(
            [pg_dump, "--data-only", "--schema", schema, "--dbname", base],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/agent-sdk.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def raw(db_url: str) -> Raw:
    return Raw(db_url)


def env_for(url: str, *, master: str | None = MASTER, enabled: bool = True) -> dict[str, str]:
    values = {"AGENT_SDK_DATABASE_URL": url, "AGENT_SDK_ENCRYPTION_ENABLED": str(enabled).lower()}
    if url.startswith("postgres"):
        values["AGENT_SDK_STORAGE_BACKEND"] = "postgres"
    if master is not None:
        values["AGENT_SDK_ENCRYPTION_MASTER_KEY"] = master
    return values


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Encryption on for this test's database, in the environment the CLI reads too."""
    for name, value in env_for(db_url).items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


def settings_for(url: str, **kw: Any) -> Settings:
    return load_settings(env={**os.environ, **env_for(url, **kw)}, cwd=Path.cwd())


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close(wait=True, timeout=10)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from agent_sdk.server.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def api(settings: Settings, client: TestClient, org: str | None = None) -> HttpBackend:
    token = settings.admin_token_path.read_text().strip()
    return HttpBackend(settings.replace(org_id=org), api_key=token, client=client)


def headers(settings: Settings, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token_path.read_text().strip()}", **extra}


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--local"], input=input)


def ok(*args: str) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def data(*args: str) -> Any:
    return json.loads(ok(*args, "-o", "json").stdout)


def canary_spec() -> dict[str, Any]:
    """An agent that reads a file holding TOOL and answers with its input and what it read: the
    tool output and the model output exist only at run time, never in the spec."""
    Path("notes.txt").write_text(f"the tool saw {TOOL}\n")
    return {
        "name": "canary",
        "model": "scripted",
        "tools": ["fs.read"],
        "script": [
            {"tool": "fs.read", "arguments": {"path": "notes.txt"}},
            {"text": "{input} / {tool_result}"},
        ],
    }


def sealed_values(raw: Raw, sql: str) -> list[str]:
    return [r[0] for r in raw.query(sql) if r[0] is not None]


# -- the canary test -----------------------------------------------------------------------------
def test_canaries_are_absent_from_the_raw_database_yet_every_read_returns_them(
    settings: Settings, client: TestClient, raw: Raw
) -> None:
    backend = api(settings, client)
    spec = canary_spec()
    spec["script"][1]["text"] = MODEL + " {tool_result} {input}"
    run = backend.create_run(spec, INPUT, metadata={"note": META}, idempotency_key="canary-1")
    done = finished(backend, run.id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.input == INPUT and done.metadata == {"note": META}
    assert done.output is not None and MODEL in done.output and TOOL in done.output
    events = backend.list_events(run.id)
    shown = json.dumps([e.to_dict() for e in events])
    assert TOOL in shown and MODEL in shown  # the tool result and the model response events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    followed = list(backend.follow_events(run.id))
    assert [e.to_dict() for e in followed] == [e.to_dict() for e in events]
    assert backend.list_runs().items[0].input == INPUT
    replay = backend.create_run(spec, INPUT, metadata={"note": META}, idempotency_key="canary-1")
    assert (replay.id, replay.input) == (run.id, INPUT)  # the stored answer, decrypted
    rt = Runtime(settings)
    try:
        rt.store.create_session("default", "sess-1", metadata={"m": SESSION_META})
    finally:
        rt.close()
    assert backend.get_session("sess-1").metadata == {"m": SESSION_META}

    dump = raw.dump()
    assert run.id.encode() in dump and SEALED_PREFIX.encode() in dump  # the dump is the data
    for canary in CANARIES:
        assert canary.encode() not in dump, canary
    inputs = sealed_values(raw, "SELECT input FROM runs")
    assert inputs and all(v.startswith(SEALED_PREFIX) for v in inputs)
    payloads = sealed_values(raw, "SELECT data FROM events")
    assert len(payloads) == len(events) and all(v.startswith(SEALED_PREFIX) for v in payloads)


def test_the_same_dump_shows_the_canaries_when_encryption_is_off(
    db_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the inspection above would see plaintext if there were any."""
    plain = settings_for(db_url, enabled=False, master=None)
    rt = Runtime(plain)
    try:
        run = rt.runs.create("default", canary_spec(), INPUT, metadata={"note": META})
        rt.executor.wait_idle(10)
        assert rt.runs.get("default", run.id).status is RunStatus.SUCCEEDED
    finally:
        rt.close()
    dump = raw.dump()
    for canary in (INPUT, TOOL, META):
        assert canary.encode() in dump, canary


# -- moved and altered ciphertexts ----------------------------------------------------------------
def _two_runs(rt: Runtime, org: str = "default") -> tuple[str, str]:
    a = rt.runs.create(org, "demo", "alpha input")
    b = rt.runs.create(org, "demo", "beta input")
    rt.executor.wait_idle(10)
    return a.id, b.id


def test_a_ciphertext_moved_to_another_row_column_or_org_does_not_decrypt(
    runtime: Runtime, raw: Raw
) -> None:
    a, b = _two_runs(runtime)
    (a_input,) = raw.query("SELECT input FROM runs WHERE id = ?", (a,))[0]
    (b_input,) = raw.query("SELECT input FROM runs WHERE id = ?", (b,))[0]

    raw.execute("UPDATE runs SET input = ? WHERE id = ?", (a_input, b))  # another row
    with pytest.raises(DecryptionFailed, match="moved"):
        runtime.runs.get("default", b)
    raw.execute("UPDATE runs SET input = ? WHERE id = ?", (b_input, b))
    assert runtime.runs.get("default", b).input == "beta input"  # put back: readable again

    raw.execute("UPDATE runs SET output = ? WHERE id = ?", (a_input, a))  # another column
    with pytest.raises(DecryptionFailed):
        runtime.runs.get("default", a)

    runtime.orgs.create("acme")
    theirs = runtime.runs.create("acme", "demo", "acme input").id
    runtime.executor.wait_idle(10)
    raw.execute("UPDATE runs SET input = ? WHERE id = ?", (b_input, theirs))  # another org
    with pytest.raises(DecryptionFailed, match="does not have"):
        runtime.runs.get("acme", theirs)

    first, second = raw.query("SELECT data FROM events WHERE run_id = ? AND seq IN (1, 2)"
                              " ORDER BY seq", (b,))  # fmt: skip
    raw.execute("UPDATE events SET data = ? WHERE run_id = ? AND seq = 2", (first[0], b))
    with pytest.raises(DecryptionFailed):
        runtime.runs.events("default", b)  # another event of the same run
    raw.execute("UPDATE events SET data = ? WHERE run_id = ? AND seq = 2", (second[0], b))
    assert len(runtime.runs.events("default", b)) > 2

    prefix, body = b_input.rsplit(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    raw.execute("UPDATE runs SET input = ? WHERE id = ?", (f"{prefix}:{flipped}", b))
    with pytest.raises(DecryptionFailed):
        runtime.runs.get("default", b)  # one altered character


def test_a_moved_ciphertext_is_a_500_problem_over_http(
    settings: Settings, client: TestClient, raw: Raw
) -> None:
    backend = api(settings, client)
    a = backend.create_run("demo", "alpha").id
    b = backend.create_run("demo", "beta").id
    (a_input,) = raw.query("SELECT input FROM runs WHERE id = ?", (a,))[0]
    raw.execute("UPDATE runs SET input = ? WHERE id = ?", (a_input, b))
    resp = client.get(f"/v1/runs/{b}", headers=headers(settings))
    assert resp.status_code == 500
    assert resp.json()["code"] == "decryption_failed" and "alpha" not in resp.text
    assert client.get(f"/v1/runs/{a}", headers=headers(settings)).json()["input"] == "alpha"


# -- rotation and re-encryption -----------------------------------------------------------------
def _key_ids(raw: Raw, sql: str) -> set[str]:
    return {v[len(SEALED_PREFIX) :].split(":", 1)[0] for v in sealed_values(raw, sql)}


def _all_key_ids(raw: Raw) -> set[str]:
    ids: set[str] = set()
    for sql in (
        "SELECT input FROM runs",
        "SELECT output FROM runs",
        "SELECT agent_spec FROM runs",
        "SELECT metadata FROM runs",
        "SELECT data FROM events",
    ):
        ids |= _key_ids(raw, sql)
    return ids


def test_rotation_and_rewrap_through_the_cli(env: dict[str, str], raw: Raw) -> None:
    spec = Path("spec.json")
    spec.write_text(json.dumps(canary_spec()))
    first = data("runs", "create", "--agent-file", str(spec), "--input", INPUT, "--wait")
    keys = data("orgs", "keys", "list")
    assert [k["state"] for k in keys] == ["active"]
    old = keys[0]["id"]
    assert _all_key_ids(raw) == {old}

    rotated = data("orgs", "keys", "rotate")
    assert rotated["state"] == "active" and rotated["id"] != old
    listed = data("orgs", "keys", "list")
    assert [(k["id"], k["state"]) for k in listed] == [(old, "retired"), (rotated["id"], "active")]
    assert all(set(k) == set(listed[0]) for k in listed)
    assert not {"kek", "dek"} & set(listed[0])  # metadata only

    second = data("runs", "create", "--agent-file", str(spec), "--input", "after", "--wait")
    (new_input,) = raw.query("SELECT input FROM runs WHERE id = ?", (second["id"],))[0]
    assert new_input.startswith(f"{SEALED_PREFIX}{rotated['id']}:")  # new writes: new key
    assert data("runs", "show", first["id"])["input"] == INPUT  # old rows: still readable
    assert _all_key_ids(raw) == {old, rotated["id"]}

    result = ok("orgs", "keys", "rewrap", "--batch", "3", "-o", "json")
    summary = json.loads(result.stdout)
    assert summary["done"] is True and summary["key_id"] == rotated["id"]
    assert summary["rewrapped"] > 0 and summary["failed"] == summary["unreadable"] == 0
    assert result.stderr.count("rewrap:") > 1  # progress, batch by batch
    assert _all_key_ids(raw) == {rotated["id"]}
    assert data("runs", "show", first["id"])["input"] == INPUT
    assert TOOL in json.dumps(data("runs", "events", first["id"]))
    again = data("orgs", "keys", "rewrap")  # idempotent: nothing left to move
    assert (again["rewrapped"], again["rows"], again["done"]) == (0, 0, True)
    log = json.dumps(data("audit", "tail"))
    assert "encryption_keys.rotate" in log and "encryption_keys.rewrap" in log


@pytest.mark.slow  # writer threads for seconds
def test_rewrap_runs_alongside_writers_and_reads_keep_working(runtime: Runtime, raw: Raw) -> None:
    for i in range(6):
        runtime.runs.create("default", "demo", f"before {i}")
    runtime.executor.wait_idle(10)
    new = runtime.encryption.rotate("default").id
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                written.append(runtime.runs.create("default", "demo", "during").id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    cursor, passes = None, 0
    try:
        while True:
            report = runtime.encryption.rewrap("default", limit=2, cursor=cursor)
            passes += 1
            for run in runtime.runs.list("default", limit=100).items:  # reads throughout
                assert run.input.startswith(("before", "during"))
            cursor = report.next_cursor
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join()
    runtime.executor.wait_idle(10)
    assert not errors and written and passes > 3
    assert runtime.encryption.rewrap("default", limit=1000).done
    assert _all_key_ids(raw) == {new}
    for run in runtime.runs.list("default", limit=100).items:
        assert len(runtime.runs.events("default", run.id)) >= 1


def test_a_rotation_in_one_process_reaches_another_within_the_cache_ttl(
    db_url: str, raw: Raw
) -> None:
    one = Runtime(settings_for(db_url).replace(encryption_key_cache_ttl=0))
    two = Runtime(settings_for(db_url).replace(encryption_key_cache_ttl=0))
    try:
        before = two.runs.create("default", "demo", "x").id
        key = one.encryption.rotate("default").id
        after = two.runs.create("default", "demo", "y").id
        (sealed,) = raw.query("SELECT input FROM runs WHERE id = ?", (after,))[0]
        assert sealed.startswith(f"{SEALED_PREFIX}{key}:")
        assert one.runs.get("default", before).input == "x"
    finally:
        one.close()
        two.close()


# -- crypto-shredding ----------------------------------------------------------------------------
def test_destroying_one_orgs_keys_shreds_its_data_and_only_its_data(
    settings: Settings, client: TestClient, raw: Raw
) -> None:
    ours = api(settings, client)
    ours.create_org("acme")
    theirs = api(settings, client, "acme")
    spec = canary_spec()
    kept = finished(ours, ours.create_run(spec, INPUT).id)
    shredded = finished(theirs, theirs.create_run(spec, INPUT, metadata={"m": META}).id)
    replayable = theirs.create_run("demo", "again", idempotency_key="k1")
    wrapped = {v for r in raw.query("SELECT kek, dek FROM encryption_keys") for v in r}
    assert len(wrapped) == 4  # two orgs, a KEK and a DEK each

    resp = client.delete(
        "/v1/admin/encryption-keys", headers=headers(settings, **{"X-Org-Id": "acme"})
    )
    assert resp.status_code == 200
    assert [k["state"] for k in resp.json()["data"]] == ["destroyed"]

    gone = theirs.get_run(shredded.id)
    assert (gone.id, gone.status) == (shredded.id, RunStatus.SUCCEEDED)  # ids, statuses stay
    assert gone.input == SHREDDED_TEXT and gone.output == SHREDDED_TEXT
    assert gone.metadata == SHREDDED_JSON
    assert {e.seq for e in theirs.list_events(shredded.id)}  # listed, unreadable
    assert all(e.data == SHREDDED_JSON for e in theirs.list_events(shredded.id))
    assert [r.id for r in theirs.list_runs().items] == [replayable.id, shredded.id]
    with pytest.raises(Conflict, match="destroyed"):
        theirs.create_run("demo", "again", idempotency_key="k1")  # no replay of a placeholder
    with pytest.raises(Conflict, match="destroyed"):
        theirs.create_run("demo", "new data")  # nothing new until a key is made again

    assert ours.get_run(kept.id).input == INPUT  # the other org: untouched
    assert TOOL in json.dumps([e.to_dict() for e in ours.list_events(kept.id)])

    dump = raw.dump()
    acme_keys = raw.query("SELECT kek, dek, state FROM encryption_keys WHERE org_id = 'acme'")
    assert acme_keys == [(None, None, "destroyed")]
    live = {v for r in raw.query("SELECT kek, dek FROM encryption_keys") for v in r if v}
    shredded_material = [v.encode() for v in wrapped - live]
    for value in shredded_material:
        assert value not in dump  # the shredded material is gone from the data
    files = dump if raw.sqlite else raw.scrubbed_table_file("encryption_keys", shredded_material)
    if files is not None:  # and from the files on disk
        assert not any(value in files for value in shredded_material)
        assert all(value.encode() in files for value in live)  # (the check can see keys)

    log = client.get("/v1/admin/audit-logs", headers=headers(settings, **{"X-Org-Id": "acme"}))
    destroyed = [e for e in log.json()["data"] if e["action"] == "encryption_keys.destroy"]
    assert len(destroyed) == 1 and not any(v in log.text for v in wrapped)

    theirs.rotate_encryption_key()  # an admin makes a key: the org stores data again
    fresh = finished(theirs, theirs.create_run("demo", "fresh").id)
    assert theirs.get_run(fresh.id).input == "fresh"
    assert theirs.get_run(shredded.id).input == SHREDDED_TEXT  # and the old stays gone


def test_destroy_through_the_cli_asks_first(env: dict[str, str], raw: Raw) -> None:
    spec = Path("spec.json")
    spec.write_text(json.dumps(canary_spec()))
    run = data("runs", "create", "--agent-file", str(spec), "--input", INPUT, "--wait")
    refused = cli("orgs", "keys", "destroy")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert data("runs", "show", run["id"])["input"] == INPUT
    destroyed = data("orgs", "keys", "destroy", "--yes")
    assert [k["state"] for k in destroyed] == ["destroyed"]
    assert data("runs", "show", run["id"])["input"] == SHREDDED_TEXT
    failed = cli("runs", "create", "--agent", "demo", "--input", "more")
    assert failed.exit_code == 1 and "destroyed" in failed.stderr
    assert "rotate" in failed.stderr  # the hint says how to store data again


# -- master keys ---------------------------------------------------------------------------------
def test_a_wrong_master_key_is_a_clear_error_at_start(db_url: str, raw: Raw) -> None:
    rt = Runtime(settings_for(db_url))
    rt.runs.create("default", "demo", INPUT)
    rt.close()
    with pytest.raises(ConfigError, match="not the one that wrapped") as caught:
        Runtime(settings_for(db_url, master=OTHER_MASTER))
    assert OTHER_MASTER not in str(caught.value) and MASTER not in str(caught.value)
    wrong = settings_for(db_url, master=OTHER_MASTER)
    store = open_store(db_url)  # past the start-up check: each read says it too
    try:
        store.codec = EnvelopeCodec(store, load_master_key(wrong))
        with pytest.raises(ConfigError, match="another master key"):
            store.list_runs("default")
    finally:
        store.close()


def test_the_cli_reports_a_wrong_master_key_on_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data("runs", "create", "--agent", "demo", "--input", INPUT)
    monkeypatch.setenv("AGENT_SDK_ENCRYPTION_MASTER_KEY", OTHER_MASTER)
    result = cli("runs", "list")
    assert result.exit_code == 2 and "Traceback" not in result.stderr  # a configuration error
    assert "master key" in result.stderr and OTHER_MASTER not in result.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, "needs a master key"),
        ({"AGENT_SDK_ENCRYPTION_MASTER_KEY": "not base64!"}, "not the base64 of 32 bytes"),
        ({"AGENT_SDK_ENCRYPTION_MASTER_KEY": base64.b64encode(b"short").decode()}, "32 bytes"),
        (
            {
                "AGENT_SDK_ENCRYPTION_MASTER_KEY": MASTER,
                "AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE": "x",
            },
            "both",
        ),
        ({"AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE": "/nonexistent/master.key"}, "cannot read"),
    ],
)
def test_master_key_settings_are_checked_without_echoing_them(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    env = {**os.environ, **env_for(f"sqlite:///{tmp_path}/x.db", master=None), **values}
    with pytest.raises(ConfigError, match=message) as caught:
        Runtime(load_settings(env=env, cwd=Path.cwd()))
    assert "not base64!" not in str(caught.value) and MASTER not in str(caught.value)


def test_the_master_key_can_come_from_a_file(tmp_path: Path, raw: Raw, db_url: str) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.urlsafe_b64encode(base64.b64decode(MASTER)).decode() + "\n")
    env = {**os.environ, **env_for(db_url, master=None)}
    env["AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE"] = str(key_file)
    rt = Runtime(load_settings(env=env, cwd=Path.cwd()))
    try:
        run = rt.runs.create("default", "demo", INPUT)
    finally:
        rt.close()
    rt = Runtime(settings_for(db_url))  # the same key given inline reads it
    try:
        assert rt.runs.get("default", run.id).input == INPUT
    finally:
        rt.close()
    assert (
        parse_master_key(MASTER, "x").id
        == load_master_key(load_settings(env=env, cwd=Path.cwd())).id
    )
    assert MASTER not in repr(load_settings(env={**env, **env_for(db_url)}, cwd=Path.cwd()))


# -- plaintext from before -----------------------------------------------------------------------
def test_enabling_on_a_database_with_plaintext_rows(db_url: str, raw: Raw) -> None:
    plain = Runtime(settings_for(db_url, enabled=False, master=None))
    try:
        old = plain.runs.create("default", canary_spec(), INPUT, idempotency_key="k-old")
        plain.executor.wait_idle(10)
        plain.store.create_session("default", "s-old", metadata={"m": SESSION_META})
    finally:
        plain.close()
    assert INPUT.encode() in raw.dump()

    rt = Runtime(settings_for(db_url))
    try:
        assert rt.runs.get("default", old.id).input == INPUT  # plaintext reads as before
        assert TOOL in json.dumps([e.to_dict() for e in rt.runs.events("default", old.id)])
        new = rt.runs.create("default", "demo", "sealed from now on")
        rt.executor.wait_idle(10)
        (sealed,) = raw.query("SELECT input FROM runs WHERE id = ?", (new.id,))[0]
        assert sealed.startswith(SEALED_PREFIX)
        report = rt.encryption.rewrap("default", limit=1000)
        assert report.done and report.rewrapped > 0 and report.tables["runs"] >= 1
        assert report.tables["events"] >= 1 and report.tables["idempotency_keys"] == 1
        again = rt.runs.create(
            "default", canary_spec(), INPUT, idempotency_key="k-old"
        )  # the sealed stored answer still replays
        assert again.id == old.id
        assert rt.sessions.get("default", "s-old").metadata == {"m": SESSION_META}
        assert rt.runs.get("default", old.id).input == INPUT
    finally:
        rt.close()
    dump = raw.dump()
    for canary in (INPUT, TOOL, SESSION_META):
        assert canary.encode() not in dump, canary

    off = Runtime(settings_for(db_url, enabled=False, master=None))  # turned off again
    try:
        with pytest.raises(ConfigError, match="encrypted, and encryption at rest is off"):
            off.runs.get("default", old.id)
    finally:
        off.close()


# -- db copy -------------------------------------------------------------------------------------
@pytest.mark.services
def test_db_copy_carries_ciphertexts_and_keys_between_engines(
    tmp_path: Path, postgres_url: str
) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    rt = Runtime(settings_for(source))
    try:
        run = rt.runs.create("default", canary_spec(), INPUT)
        rt.executor.wait_idle(10)
    finally:
        rt.close()
    from agent_sdk.store.copy import copy_database

    report = copy_database(source, postgres_url)
    assert report.ok and "encryption_keys" in [t.table for t in report.tables]
    dst = Raw(postgres_url)
    assert INPUT.encode() not in dst.dump()
    copied = Runtime(settings_for(postgres_url))
    try:
        assert copied.runs.get("default", run.id).input == INPUT  # AAD knows no engine
        assert TOOL in json.dumps([e.to_dict() for e in copied.runs.events("default", run.id)])
    finally:
        copied.close()


# -- the admin API's edges ----------------------------------------------------------------------
def test_encryption_keys_api_refuses_hostile_requests(
    settings: Settings, client: TestClient
) -> None:
    path = "/v1/admin/encryption-keys"
    h = headers(settings)
    assert client.get(path).status_code == 401
    forged = {"Authorization": "Bearer asdk_AAAAAAAAAAAAAAAA_" + "A" * 38}
    assert client.post(path, headers=forged).status_code == 401
    assert client.delete(path, headers=forged).status_code == 401
    backend = api(settings, client)
    _, viewer = backend.create_key(name="viewer", role="viewer")
    for method in ("GET", "POST", "DELETE"):
        resp = client.request(method, path, headers={"Authorization": f"Bearer {viewer}"})
        assert resp.status_code == 403, method
    backend.create_org("acme")
    _, theirs = api(settings, client, "acme").create_key(name="admin", role="admin")
    mine = {"Authorization": f"Bearer {theirs}", "X-Org-Id": "default"}
    assert client.delete(path, headers=mine).status_code == 403  # another org's keys
    assert client.get(path, headers={**h, "X-Org-Id": "../default"}).status_code == 400
    assert client.get(path, headers={**h, "X-Org-Id": "nobody"}).status_code == 404

    rewrap = path + "/rewrap"
    for body in (
        {"limit": 0},
        {"limit": 10**9},
        {"cursor": "x" * 5000},
        {"cursor": "not-a-cursor"},
        {"limit": "many"},
        {"extra": 1},
    ):
        resp = client.post(rewrap, json=body, headers=h)
        assert resp.status_code == 422, body
    from agent_sdk.cursors import encode_cursor

    for forged_cursor in (
        encode_cursor("rewrap:[99, null]"),
        encode_cursor('rewrap:[1, ["run", "seq"]]'),
        encode_cursor("run:whatever"),
    ):
        resp = client.post(rewrap, json={"cursor": forged_cursor}, headers=h)
        assert resp.status_code == 422, forged_cursor
    assert client.post(rewrap, headers=h).json()["done"] is True
    assert client.post(path, headers=h, json={"kek": "mine"}).status_code == 201  # no body read
    listed = client.get(path, headers=h).json()  # rewrap made the first key, POST rotated it
    assert listed["enabled"] is True
    assert [k["state"] for k in listed["data"]] == ["retired", "active"]
    assert all(set(k) >= {"id", "state", "created_at"} for k in listed["data"])
    assert not any({"kek", "dek"} & set(k) for k in listed["data"])


def test_with_encryption_off_keys_list_empty_and_changes_are_conflicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_sdk.server.app import create_app

    off = settings_for(f"sqlite:///{tmp_path}/off.db", enabled=False, master=None)
    with TestClient(create_app(off)) as c:
        backend = api(off, c)
        assert backend.list_encryption_keys() == []
        with pytest.raises(Conflict, match="not enabled"):
            backend.rotate_encryption_key()
        with pytest.raises(Conflict, match="not enabled"):
            backend.rewrap_encryption()
        assert backend.destroy_encryption_keys() == []  # shredding never needs the master key
        with pytest.raises(NotFound):
            api(off, c, "nobody").list_encryption_keys()
    local = LocalBackend(off)
    try:
        with pytest.raises(Conflict, match="not enabled"):
            local.rotate_encryption_key()
    finally:
        local.close()


def test_http_and_local_backends_agree(settings: Settings, client: TestClient) -> None:
    http = api(settings, client)
    local = LocalBackend(settings)
    try:
        assert http.list_encryption_keys() == local.list_encryption_keys() == []
        made = http.rotate_encryption_key()
        assert local.list_encryption_keys() == http.list_encryption_keys() == [made]
        run = http.create_run("demo", INPUT)
        assert local.get_run(run.id).input == INPUT
        assert local.rewrap_encryption().done and http.rewrap_encryption().done
        with pytest.raises(AuthenticationError):
            HttpBackend(settings, api_key="asdk_nope", client=client).list_encryption_keys()
        with pytest.raises((PermissionDenied, NotFound)):
            api(settings, client, "nobody").rotate_encryption_key()
        with pytest.raises(InvalidInput):
            local.rewrap_encryption(cursor="garbage")
    finally:
        local.close()


# -- concurrency ---------------------------------------------------------------------------------
def test_concurrent_sealed_appends_keep_seqs_gap_free(runtime: Runtime) -> None:
    run = runtime.runs.create("default", "demo", "x")
    runtime.executor.wait_idle(10)
    store = runtime.store
    # Re-opened, as an operator's retry does: nothing may follow a finished run's last event.
    store.update_run("default", run.id, status=RunStatus.QUEUED)
    before = len(store.list_events("default", run.id))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            barrier.wait()
            for i in range(15):
                store.append_event("default", run.id, "test.note", {"writer": n, "i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = store.list_events("default", run.id)
    assert [e.seq for e in events] == list(range(1, before + 61))
    notes = [(e.data["writer"], e.data["i"]) for e in events if e.type == "test.note"]
    assert sorted(notes) == [(n, i) for n in range(4) for i in range(15)]


def test_two_processes_making_an_orgs_first_key_agree_on_one(db_url: str, raw: Raw) -> None:
    runtimes = [Runtime(settings_for(db_url)) for _ in range(3)]
    try:
        runtimes[0].orgs.create("fresh")
        barrier = threading.Barrier(len(runtimes))
        made: list[str] = []
        errors: list[BaseException] = []

        def create(rt: Runtime) -> None:
            try:
                barrier.wait()
                made.append(rt.runs.create("fresh", "demo", "first").id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(rt,)) for rt in runtimes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(made) == 3
        states = raw.query("SELECT state FROM encryption_keys WHERE org_id = 'fresh'")
        assert states == [("active",)]
        for rt in runtimes:
            for run_id in made:
                assert rt.runs.get("fresh", run_id).input == "first"
    finally:
        for rt in runtimes:
            rt.close()


def test_a_key_made_in_a_rolled_back_transaction_is_never_used(runtime: Runtime, raw: Raw) -> None:
    runtime.orgs.create("undo")
    store = runtime.store
    with pytest.raises(RuntimeError), store.transaction():
        store.create_session("undo", "s1", metadata={"a": 1})  # makes the org's first key
        raise RuntimeError("roll back")
    assert raw.query("SELECT id FROM encryption_keys WHERE org_id = 'undo'") == []
    store.create_session("undo", "s2", metadata={"b": 2})
    (key_id,) = raw.query("SELECT id FROM encryption_keys WHERE org_id = 'undo'")[0]
    (sealed,) = raw.query("SELECT metadata FROM sessions WHERE id = 's2'")[0]
    assert sealed.startswith(f"{SEALED_PREFIX}{key_id}:")
    assert store.get_session("undo", "s2").metadata == {"b": 2}
