"""`agent-sdk db copy` on its real path: the CLI, a SQLite deployment populated through the CLI
and the stores, a real Postgres schema (the ``postgres_url`` fixture), and back to a new SQLite
file. Contents are compared with plain driver reads, not only with the command's own checksums.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app
from agent_sdk.config import Settings
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Run, RunStatus
from agent_sdk.store import open_store
from agent_sdk.store.copy import SKIPPED, canonical_schema

pytestmark = pytest.mark.services

runner = CliRunner()
PASSWORD = "Sup3r-s3cret!pw"

HOSTILE_TEXT = [
    "'; DROP TABLE runs; --",
    "Robert'); DELETE FROM events WHERE ('1'='1",
    'quotes " and \\ backslashes \\" and %s %% ? :name $1',
    "ünïcödé — 日本語 — 🤖 — عربى — \u202etxt.exe — e\u0301 — \u200d — \u2028\u2029",
    "line\nbreak\ttab\r",
]
HOSTILE_DATA: dict[str, Any] = {
    "text": HOSTILE_TEXT,
    "nul inside JSON": "a\u0000b",  # JSON text escapes it, so Postgres can hold the payload
    "big": 2**63 - 1,
    "small": -(2**63),
    "floats": [1e308, 5e-324, -0.0, 0.1 + 0.2],
    "nested": {"": [{'k"ey': None}, True, False, []], "🤖": {"\u0000": "x"}},
}


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), env=env, input=input)


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    result = cli(*args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def data(*args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ok(*args, "-o", "json", env=env).stdout)


def error(result: Result) -> dict[str, Any]:
    """The one JSON error on stderr (the command was given -o json)."""
    assert "Traceback" not in result.stderr + result.stdout
    parsed: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return parsed


def on(url: str) -> dict[str, str]:
    """The environment that points the other commands at ``url``."""
    return {"AGENT_SDK_DATABASE_URL": url}


def with_password(url: str) -> str:
    # The test server trusts local connections, so the password is sent and ignored.
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


# -- a populated deployment -------------------------------------------------------------------


@pytest.fixture
def source(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A SQLite deployment with three orgs, sessions, runs and their events (hostile payloads
    included), API keys, a hash-chained audit log with signed checkpoints, idempotency records
    and a setting. Returns its URL and what the assertions need."""
    monkeypatch.setenv("AGENT_SDK_AUDIT_HASH_CHAIN", "true")
    monkeypatch.setenv("AGENT_SDK_AUDIT_CHECKPOINT_EVERY", "2")
    runs: dict[str, list[str]] = {}
    for org in ("acme", "globex", "Zeta_org"):
        ok("orgs", "create", org)
        ok("keys", "create", "--name", f"ci of {org}", "--org", org)
        ok("keys", "create", "--name", "'; DROP TABLE api_keys; --", "--org", org)
        for i, text in enumerate(HOSTILE_TEXT[:3]):
            run = data(
                "runs",
                "create",
                "--agent",
                "demo",
                "--input",
                text,
                "--org",
                org,
                "--session",
                f"chat-{i % 2}",
                "--idempotency-key",
                f"key-{org}-{i}",
            )
            runs.setdefault(org, []).append(run["id"])
    store = open_store(f"sqlite:///{settings.store.sqlite_path}")
    try:
        for org, ids in runs.items():
            # Events after the run's end, as databases written before the store refused them
            # may hold: a copy carries whatever history it finds (re-opened only to write it).
            store.update_run(org, ids[0], status=RunStatus.RUNNING)
            for text in HOSTILE_TEXT:
                store.append_event(org, ids[0], "custom.hostile", {"input": text, **HOSTILE_DATA})
            store.update_run(org, ids[0], status=RunStatus.SUCCEEDED)
        store.set_meta("deployment.note", "copied ✓ — 'quoted' \\ \"twice\"")
    finally:
        store.close()
    return {
        "url": f"sqlite:///{settings.store.sqlite_path}",
        "path": settings.store.sqlite_path,
        "runs": runs,
    }


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, read with the plain driver and sorted in Python."""
    columns = next(s.columns for s in canonical_schema()[0] if s.name == table)
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as db:
            rows = db.execute(sql).fetchall()
        db.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(sql.encode()).fetchall()
    return sorted(rows, key=repr)


def file_bytes(db: Path) -> dict[str, bytes]:
    """The database file and its write-ahead log (when it has one with content)."""
    files = [db, db.with_name(db.name + "-wal")]
    return {f.name: f.read_bytes() for f in files if f.exists() and f.stat().st_size}


def user_tables() -> list[str]:
    return [s.name for s in canonical_schema()[0]]


# -- the round trip ---------------------------------------------------------------------------


def test_sqlite_to_postgres_and_back_keeps_every_row_and_value(
    source: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    before = file_bytes(source["path"])
    there = data("db", "copy", "--from", source["url"], "--to", postgres_url)
    assert there["ok"] and there["committed"] and not there["replaced"]
    assert file_bytes(source["path"]) == before  # the source is never written to
    names = [t["table"] for t in there["tables"]]
    assert names == user_tables()
    for parent, child in [
        ("orgs", "sessions"),
        ("sessions", "runs"),
        ("runs", "events"),
        ("orgs", "api_keys"),
    ]:
        assert names.index(parent) < names.index(child)
    assert {s["table"] for s in there["skipped"]} == set(SKIPPED)
    by_table = {t["table"]: t for t in there["tables"]}
    for table in names:
        expected = table_rows(source["url"], table)
        assert table_rows(postgres_url, table) == expected, table
        t = by_table[table]
        assert t["source_rows"] == t["destination_rows"] == len(expected)
        assert t["source_sha256"] == t["destination_sha256"] and len(t["source_sha256"]) == 64
    assert by_table["events"]["source_rows"] > 60 and by_table["audit_log"]["source_rows"] >= 18
    assert by_table["audit_checkpoints"]["source_rows"] >= 6
    assert there["rows"] == sum(t["source_rows"] for t in there["tables"])

    back_url = f"sqlite:///{tmp_path / 'back' / 'agent-sdk.db'}"
    (tmp_path / "back").mkdir()
    back = data("db", "copy", "--from", postgres_url, "--to", back_url)
    assert back["ok"]
    for t_there, t_back in zip(there["tables"], back["tables"], strict=True):
        # One digest for one table's rows, whatever engine holds them.
        assert t_back["destination_sha256"] == t_there["source_sha256"], t_there["table"]
    for table in names:
        assert table_rows(back_url, table) == table_rows(source["url"], table), table


def test_the_copy_serves_the_same_runs_events_and_audit_chain(
    source: dict[str, Any], postgres_url: str
) -> None:
    ok("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    src, dst = open_store(source["url"]), open_store(postgres_url)
    try:
        for org, ids in source["runs"].items():
            for run_id in ids:
                assert dst.get_run(org, run_id) == src.get_run(org, run_id)
                assert dst.list_events(org, run_id) == src.list_events(org, run_id)
            hostile = [e for e in dst.list_events(org, ids[0]) if e.type == "custom.hostile"]
            assert [e.data["input"] for e in hostile] == HOSTILE_TEXT
            assert hostile[0].data["nul inside JSON"] == "a\u0000b"
            assert hostile[0].data["floats"] == HOSTILE_DATA["floats"]
            assert dst.list_sessions(org).items == src.list_sessions(org).items
            assert dst.list_api_keys(org).items == src.list_api_keys(org).items
            assert list(dst.iter_audit(org)) == list(src.iter_audit(org))
            assert dst.list_checkpoints(org) == src.list_checkpoints(org)
        assert dst.get_meta("deployment.note") == src.get_meta("deployment.note")
        last = src.list_events("acme", source["runs"]["acme"][0])[-1].seq
    finally:
        src.close()
        dst.close()

    for org in source["runs"]:
        report = data("audit", "verify", "--org", org, "--local", env=on(postgres_url))
        assert report["ok"] and report["count"] >= 6 and report["checkpoints"] >= 3, report
    # New writes continue where the copy ended: no seq, id or chain position is reused.
    dst = open_store(postgres_url)
    try:
        event = dst.append_event("acme", source["runs"]["acme"][0], "custom.after", {})
        assert event.seq == last + 1
    finally:
        dst.close()
    ok(
        "keys",
        "create",
        "--name",
        "after the move",
        "--org",
        "acme",
        "--local",
        env=on(postgres_url),
    )
    run = data(
        "runs",
        "create",
        "--agent",
        "demo",
        "--input",
        "after",
        "--org",
        "acme",
        "--session",
        "chat-0",
        "--local",
        env=on(postgres_url),
    )
    assert run["status"] == "succeeded" and run["id"] not in source["runs"]["acme"]
    after = data("audit", "verify", "--org", "acme", "--local", env=on(postgres_url))
    assert after["ok"] and after["count"] > report["count"]


def test_a_sequence_owned_by_a_copied_column_moves_past_the_copied_rows(
    source: dict[str, Any], postgres_url: str
) -> None:
    import psycopg

    store = open_store(postgres_url)
    store.migrate()
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE audit_seq OWNED BY audit_log.seq")
        conn.execute("ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_seq')")
    report = data("db", "copy", "--from", source["url"], "--to", postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        top = conn.execute("SELECT MAX(seq) FROM audit_log").fetchone()
        assert report["sequences"] == [f"audit_log.seq: next {top[0] + 1}"]
        assert conn.execute("SELECT nextval('audit_seq')").fetchone() == (top[0] + 1,)


# -- refusals ---------------------------------------------------------------------------------


def test_a_non_empty_destination_is_refused_unless_replaced(
    source: dict[str, Any], postgres_url: str
) -> None:
    ok("db", "copy", "--from", source["url"], "--to", postgres_url, "-q")
    run = data(
        "runs",
        "create",
        "--agent",
        "demo",
        "--input",
        "only in the destination",
        "--local",
        env=on(postgres_url),
    )
    again = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    assert again.exit_code == 1
    err = error(again)
    assert err["code"] == "conflict" and "not empty" in err["message"]
    assert "runs (" in err["message"] and "events (" in err["message"]
    assert "--replace" in err["hint"]

    unasked = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "--replace")
    assert unasked.exit_code == 2 and "pass --yes" in unasked.stderr
    declined = runner.invoke(
        app,
        ["db", "copy", "--from", source["url"], "--to", postgres_url, "--replace"],
        input="n\n",
    )
    assert declined.exit_code == 2  # no terminal: CliRunner's stdin is not a TTY

    replaced = data(
        "db", "copy", "--from", source["url"], "--to", postgres_url, "--replace", "--yes"
    )
    assert replaced["ok"] and replaced["replaced"]
    for table in user_tables():
        assert table_rows(postgres_url, table) == table_rows(source["url"], table), table
    gone = cli("runs", "show", run["id"], "--local", "-o", "json", env=on(postgres_url))
    assert gone.exit_code == 1 and error(gone)["code"] == "not_found"


def test_a_missing_source_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "agent-sdk.db"
    result = cli(
        "db",
        "copy",
        "--from",
        f"sqlite:///{missing}",
        "--to",
        f"sqlite:///{tmp_path / 'out.db'}",
        "-o",
        "json",
    )
    assert result.exit_code == 1
    err = error(result)
    assert err["code"] == "not_found" and str(missing) in err["message"]
    assert not missing.parent.exists() and not (tmp_path / "out.db").exists()


@pytest.mark.parametrize(
    ("to", "needle"),
    [
        ("mysql://root:{pw}@127.0.0.1/db", "unknown database scheme 'mysql'"),
        ("file:///etc/passwd", "unknown database scheme 'file'"),
        ("postgresq://u:{pw}@127.0.0.1/db", "did you mean 'postgresql'"),
        ("sqlite://me:{pw}@evil.example/x.db", "not a SQLite URL"),
        ("sqlite:///copy.db?mode=ro&password={pw}", "does not name a database file"),
        ("sqlite:///:memory:", "does not name a database file"),
        ("sqlite:///", "does not name a database file"),
        ("sqlite:///no/such/dir/x.db", "does not exist"),
        ("", "empty"),
    ],
)
def test_bad_destination_urls_are_clear_errors_without_secrets(
    source: dict[str, Any], to: str, needle: str
) -> None:
    result = cli(
        "db", "copy", "--from", source["url"], "--to", to.format(pw=PASSWORD), "-o", "json"
    )
    assert result.exit_code in (1, 2)
    err = error(result)
    assert needle in err["message"] + err.get("hint", ""), err
    assert PASSWORD not in result.stdout + result.stderr


def test_files_that_are_not_databases_are_never_read_as_one_or_overwritten(
    source: dict[str, Any], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    to_notes = cli(
        "db", "copy", "--from", source["url"], "--to", f"sqlite:///{notes}", "-o", "json"
    )
    assert to_notes.exit_code == 2 and "is not a SQLite database" in error(to_notes)["message"]
    assert notes.read_text() == "not a database\n"
    from_notes = cli(
        "db",
        "copy",
        "--from",
        f"sqlite:///{notes}",
        "--to",
        f"sqlite:///{tmp_path / 'x.db'}",
        "-o",
        "json",
    )
    assert from_notes.exit_code == 2 and "not a SQLite database" in error(from_notes)["message"]
    into_dir = cli(
        "db", "copy", "--from", source["url"], "--to", f"sqlite:///{tmp_path}", "-o", "json"
    )
    assert into_dir.exit_code == 2 and "is a directory" in error(into_dir)["message"]
    empty = tmp_path / "empty.db"
    empty.touch()
    from_empty = cli(
        "db",
        "copy",
        "--from",
        f"sqlite:///{empty}",
        "--to",
        f"sqlite:///{tmp_path / 'y.db'}",
        "-o",
        "json",
    )
    assert from_empty.exit_code == 2 and "empty file" in error(from_empty)["message"]


def test_the_same_database_on_both_sides_is_refused(
    source: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(source["path"])
    for to in (source["url"], f"sqlite:///{link}"):
        result = cli("db", "copy", "--from", source["url"], "--to", to, "-o", "json")
        assert result.exit_code == 2 and "same database" in error(result)["message"]
    store = open_store(postgres_url)
    store.migrate()
    store.close()
    other_spelling = postgres_url.replace("127.0.0.1", "localhost", 1)
    result = cli("db", "copy", "--from", postgres_url, "--to", other_spelling, "-o", "json")
    assert result.exit_code == 2 and "same database" in error(result)["message"]


def test_a_source_at_another_schema_version_is_refused(
    source: dict[str, Any], postgres_url: str
) -> None:
    db = sqlite3.connect(source["path"])
    last = db.execute("SELECT * FROM schema_migrations ORDER BY version DESC LIMIT 1").fetchone()
    db.execute("DELETE FROM schema_migrations WHERE version = ?", (last[0],))
    db.commit()
    behind = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    assert behind.exit_code == 1
    assert "1 pending migration" in error(behind)["message"]
    assert "agent-sdk db migrate" in error(behind)["hint"]
    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", last)
    db.execute("INSERT INTO schema_migrations VALUES (9999, 'from_the_future', ?)", (last[2],))
    db.commit()
    db.close()
    ahead = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    assert ahead.exit_code == 1 and "9999" in error(ahead)["message"]
    assert "upgrade agent-sdk" in error(ahead)["hint"]
    import psycopg

    with psycopg.connect(postgres_url) as conn:  # refused before the destination was touched
        tables = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
    assert tables == (0,)


# -- failures leave the destination as it was ---------------------------------------------------


def test_a_row_postgres_cannot_store_names_the_row_and_leaves_nothing_behind(
    source: dict[str, Any], postgres_url: str
) -> None:
    bad = source["runs"]["globex"][1]
    db = sqlite3.connect(source["path"])
    db.execute("UPDATE runs SET input = ? WHERE id = ?", ("nul \x00 here", bad))
    db.commit()
    db.close()
    result = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    assert result.exit_code == 1
    err = error(result)
    assert bad in err["message"] and "table runs" in err["message"] and "NUL" in err["message"]
    for table in user_tables():  # rolled back: only the migrations' own rows remain
        assert len(table_rows(postgres_url, table)) == (1 if table in ("orgs", "projects") else 0)
    assert table_rows(postgres_url, "orgs")[0][0] == "default"


def test_a_destination_that_alters_rows_fails_verification_and_is_rolled_back(
    source: dict[str, Any], postgres_url: str
) -> None:
    import psycopg

    store = open_store(postgres_url)
    store.migrate()
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # A hostile destination: a trigger that rewrites what it is given.
        conn.execute(
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN NEW.input := upper(NEW.input); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER shout BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION shout()"
        )
    result = cli("db", "copy", "--from", source["url"], "--to", postgres_url, "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and not report["committed"]
    bad = [t for t in report["tables"] if not t["ok"]]
    assert [t["table"] for t in bad] == ["runs"]
    assert bad[0]["source_rows"] == bad[0]["destination_rows"]  # same count, other contents
    assert bad[0]["source_sha256"] != bad[0]["destination_sha256"]
    err = error(result)
    assert err["code"] == "copy_mismatch" and "rolled back" in err["message"]
    assert table_rows(postgres_url, "runs") == [] and table_rows(postgres_url, "events") == []


# -- output -----------------------------------------------------------------------------------


def test_passwords_are_masked_everywhere(source: dict[str, Any], postgres_url: str) -> None:
    secret_url = with_password(postgres_url)
    result = cli("db", "copy", "--from", source["url"], "--to", secret_url, "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["destination"] == secret_url.replace(PASSWORD, "***")
    assert "warning: the password in --to" in result.stderr
    back = cli("db", "copy", "--from", secret_url, "--to", source["url"] + ".2", "-o", "table")
    assert back.exit_code == 0, back.stderr
    refused = cli("db", "copy", "--from", source["url"], "--to", secret_url)
    assert refused.exit_code == 1
    unreachable = with_password("postgresql://postgres@127.0.0.1:1/test")
    down = cli("db", "copy", "--from", source["url"], "--to", unreachable, "-o", "json")
    assert down.exit_code == 1 and error(down)["code"] == "backend_unavailable"
    assert "127.0.0.1:1" in error(down)["message"]
    for r in (result, back, refused, down):
        assert PASSWORD not in r.stdout + r.stderr
        assert "***" in r.stdout + r.stderr


def test_table_csv_and_quiet_output(source: dict[str, Any], tmp_path: Path) -> None:
    table = ok(
        "db",
        "copy",
        "--from",
        source["url"],
        "--to",
        f"sqlite:///{tmp_path / 'a.db'}",
        "-o",
        "table",
    )
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "TABLE",
        "ROWS",
        "SOURCE",
        "SHA-256",
        "DESTINATION",
        "SHA-256",
        "MATCH",
    ]
    assert [line.split()[0] for line in lines[1:]] == user_tables()
    assert all(line.split()[-1] == "yes" for line in lines[1:])
    assert "skipped workers" in table.stderr and "(committed)" in table.stderr
    assert "\x1b[" not in table.stderr  # no progress bar without a terminal

    csv = ok(
        "db",
        "copy",
        "--from",
        source["url"],
        "--to",
        f"sqlite:///{tmp_path / 'b.db'}",
        "-o",
        "csv",
        "-q",
    )
    header, *rows = csv.stdout.splitlines()
    assert header.split(",")[:3] == ["table", "source_rows", "destination_rows"]
    assert [r.split(",")[0] for r in rows] == user_tables()
    assert csv.stderr == ""


@pytest.fixture
def big_source(settings: Settings) -> Iterator[str]:
    """Enough events for several batches of a small batch size."""
    store = open_store(f"sqlite:///{settings.store.sqlite_path}")
    store.migrate()
    now = utcnow()
    run = Run(new_id("run"), "default", "demo", RunStatus.SUCCEEDED, "x", now, now)
    store.insert_run(run)
    with store.transaction():
        for i in range(2500):
            store.append_event("default", run.id, "model.delta", {"text": f"token {i}"})
    store.close()
    yield f"sqlite:///{settings.store.sqlite_path}"


def test_small_batches_stream_the_same_rows(big_source: str, postgres_url: str) -> None:
    report = data("db", "copy", "--from", big_source, "--to", postgres_url, "--batch-size", "7")
    events = next(t for t in report["tables"] if t["table"] == "events")
    assert events["source_rows"] == events["destination_rows"] == 2500 and events["ok"]
    assert table_rows(postgres_url, "events") == table_rows(big_source, "events")


# -- a source that others are writing -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def busy(request: pytest.FixtureRequest, settings: Settings) -> Iterator[dict[str, Any]]:
    """A deployment on either engine with a few finished runs, and its Runtime to write more
    (the role of a server that keeps writing while the copy runs)."""
    from agent_sdk.config import load_settings
    from agent_sdk.core.runtime import Runtime

    if request.param == "sqlite":
        url = (
            f"sqlite:///{settings.store.sqlite_path}"  # the database `agent-sdk up` here would use
        )
        conf = settings
    else:
        url = request.getfixturevalue("postgres_url")
        env = {"AGENT_SDK_STORAGE_BACKEND": "postgres", "AGENT_SDK_DATABASE_URL": url}
        conf = load_settings(env={**os.environ, **env}, cwd=Path.cwd())
    rt = Runtime(conf)
    try:
        ids = [finish(rt, f"before copy {i}") for i in range(3)]
        yield {"url": url, "rt": rt, "runs": ids, "engine": request.param}
    finally:
        rt.close(wait=True, timeout=10)


def finish(rt: Any, text: str) -> str:
    """A demo run created and executed to its end, as a server would."""
    run = rt.runs.create("default", "demo", text)
    deadline = time.monotonic() + 30
    while not rt.store.get_run("default", run.id).status.terminal:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.01)
    return str(run.id)


def worker_row(store: Any, name: str, beat: str) -> None:
    from agent_sdk.store.workers import WorkerInfo

    store.register_worker(WorkerInfo(name, "host-a", 4242, beat, beat))


def test_a_source_with_live_workers_is_refused_unless_live_source(
    busy: dict[str, Any], tmp_path: Path
) -> None:
    store = busy["rt"].store
    worker_row(store, "host-a:4242\x1b[2J", utcnow())  # a name that tries to clear a terminal
    first = tmp_path / "first.db"
    refused = cli("db", "copy", "--from", busy["url"], "--to", f"sqlite:///{first}", "-o", "json")
    assert refused.exit_code == 1, (refused.stdout, refused.stderr)
    err = error(refused)
    assert err["code"] == "conflict" and "is in use: 1 live worker(s)" in err["message"]
    assert "--live-source" in err["hint"] and "\x1b" not in refused.stderr
    assert not first.exists()  # refused before the destination was created
    # Asked for explicitly: a snapshot of the live source.
    live = cli("db", "copy", "--from", busy["url"], "--to", f"sqlite:///{first}",
               "--live-source", "-o", "json")  # fmt: skip
    assert live.exit_code == 0, live.stderr
    assert json.loads(live.stdout)["committed"] is True
    # A worker that died without removing its row (kill -9) is not a writer.
    store.remove_worker("host-a:4242\x1b[2J")
    worker_row(store, "host-b:1", "2000-01-01T00:00:00.000000Z")
    second = cli("db", "copy", "--from", busy["url"], "--to", f"sqlite:///{tmp_path / 's.db'}")
    assert second.exit_code == 0, second.stderr


@pytest.mark.parametrize("busy", ["sqlite"], indirect=True)  # `up` serves this machine's file
def test_a_source_served_by_agent_sdk_up_here_is_refused(
    busy: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    state = settings.server_state_path
    state.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()}))  # alive
    to = f"sqlite:///{tmp_path / 'copy.db'}"
    refused = cli("db", "copy", "--from", busy["url"], "--to", to, "-o", "json")
    assert refused.exit_code == 1
    assert "the server of `agent-sdk up`" in error(refused)["message"]
    assert not (tmp_path / "copy.db").exists()
    # Another spelling of the same file is the same file.
    link = tmp_path / "link.db"
    link.symlink_to(settings.store.sqlite_path)
    assert cli("db", "copy", "--from", f"sqlite:///{link}", "--to", to).exit_code == 1
    # A state file whose process is gone is no server.
    state.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 12345}))
    assert cli("db", "copy", "--from", busy["url"], "--to", to).exit_code == 0


def test_writes_during_a_live_copy_leave_a_consistent_snapshot(
    busy: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer commits runs and events into the source between the tables of the copy. The
    copy holds the source as it was when it started, every table of the same moment: no event
    of a run it lacks, no run without its events; it verifies and commits."""
    from contextlib import contextmanager

    from agent_sdk.cli import db as db_cli

    before = {t: table_rows(busy["url"], t) for t in ("runs", "events", "audit_log")}
    written: list[str] = []

    def writer(phase: str, table: str, done: int, total: int) -> None:
        if phase == "copy" and done == 0 and len(written) < 6:
            written.append(finish(busy["rt"], f"during copy of {table}"))

    @contextmanager
    def progress(*, enabled: bool) -> Iterator[Any]:
        yield writer

    monkeypatch.setattr(db_cli, "_progress", progress)
    to = f"sqlite:///{tmp_path / 'snapshot.db'}"
    result = cli("db", "copy", "--from", busy["url"], "--to", to, "--live-source", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["committed"] is True and all(t["ok"] for t in report["tables"])
    assert len(written) == 6  # the writer did write, in the middle of the copy
    for table, rows in before.items():
        assert table_rows(to, table) == rows, table  # the source as it was at the start
    runs_now = {r[0] for r in table_rows(busy["url"], "runs")}
    assert set(written) <= runs_now and not set(written) & {r[0] for r in before["runs"]}
