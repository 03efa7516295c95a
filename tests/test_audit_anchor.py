"""Signed checkpoints kept outside the database (the anchor), on SQLite and Postgres, through the
CLI (local, and over HTTP to an in-process server) and the HTTP API.

The attacker has the database (raw SQL on its own connection, never through the store) and the
signing key file that sits beside it by default; the verifier has an anchor exported before the
attack and the public key exported at set-up. Each tamper case that ``audit verify`` used to
answer ``ok`` must now fail with the anchor, naming what is missing."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.canonical import chain_hash, checkpoint_payload
from agent_sdk.cli.audit_anchor import anchor_line, append_new, parse_anchor
from agent_sdk.cli.main import app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core.audit import AuditService
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import Conflict, InvalidInput
from agent_sdk.governance.audit_signing import CheckpointSigner
from agent_sdk.records import AuditEntry, Checkpoint
from agent_sdk.server.app import create_app
from agent_sdk.store import store_from_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

runner = CliRunner()
ORG = "acme"  # not the bootstrap org, whose log a server start writes to
SERVER = "http://testserver"
EVERY = 5  # a checkpoint every 5 records: 12 records give checkpoints at 5 and 10


# -- the world ----------------------------------------------------------------------------------
@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of one test, on the store of `engine` (also for the CLI)."""
    monkeypatch.setenv("AGENT_SDK_AUDIT_HASH_CHAIN", "true")
    monkeypatch.setenv("AGENT_SDK_AUDIT_CHECKPOINT_EVERY", str(EVERY))
    return dict(os.environ)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


@pytest.fixture(params=["local", "http"])
def via(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """The CLI's leading arguments: the local database, or an in-process server on it."""
    if request.param == "local":
        yield []
        return
    real = http.HttpBackend
    with TestClient(create_app(settings)) as client:

        def connect(s: Settings, **kw: Any) -> http.HttpBackend:
            return real(s, client=client, **kw)

        monkeypatch.setattr(http, "HttpBackend", connect)
        monkeypatch.setenv("AGENT_SDK_API_KEY", settings.admin_token_path.read_text().strip())
        yield ["--server", SERVER]


def cli(via: list[str], *args: str) -> Result:
    return runner.invoke(app, [*args, "--org", ORG, *via])


def data(via: list[str], *args: str) -> Any:
    result = cli(via, *args, "-o", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def failed(result: Result) -> tuple[dict[str, Any], str]:
    """A failed verification: exit 1, the report on stdout, the reason in the error."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    report: dict[str, Any] = json.loads(result.stdout)
    assert not report["ok"] and "Traceback" not in result.stderr
    message: str = json.loads(result.stderr)["error"]["message"]
    assert report["reason"] in message
    return report, report["reason"]


def raw(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> None:
    """SQL on the database behind the store's back: what an attacker with the database does."""
    if settings.store.backend == "postgres":
        import psycopg

        with psycopg.connect(settings.store.database_url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return
    db = sqlite3.connect(settings.store.sqlite_path, isolation_level=None)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def records(settings: Settings) -> list[AuditEntry]:
    store = store_from_settings(settings)
    try:
        return list(store.iter_audit(ORG))
    finally:
        store.close()


def rewrite(settings: Settings, *, resign_with: CheckpointSigner | None = None) -> None:
    """Change record 3, recompute every hash, delete every checkpoint; with ``resign_with``,
    sign new checkpoints of the rewritten log (at the same seqs) with that key."""
    raw(settings, "UPDATE audit_log SET actor = 'nobody' WHERE org_id = ? AND seq = 3", (ORG,))
    old = {cp.seq for cp in checkpoints_in_db(settings)}
    raw(settings, "DELETE FROM audit_checkpoints WHERE org_id = ?", (ORG,))
    prev: str | None = None
    for e in records(settings):
        new = chain_hash(prev, AuditEntry(**{**e.to_dict(), "prev_hash": prev}))
        raw(
            settings,
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE org_id = ? AND seq = ?",
            (prev, new, ORG, e.seq),
        )
        if resign_with is not None and e.seq in old:
            cp = {"org_id": ORG, "seq": e.seq, "head_hash": new, "time": "2030-01-01T00:00:00Z"}
            raw(
                settings,
                "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                (ORG, e.seq, new, cp["time"], resign_with.sign(checkpoint_payload(cp)),
                 resign_with.key_id),
            )  # fmt: skip
        prev = new


def checkpoints_in_db(settings: Settings) -> list[Checkpoint]:
    store = store_from_settings(settings)
    try:
        return store.list_checkpoints(ORG)
    finally:
        store.close()


def populate(settings: Settings, count: int = 12, *, seal: bool = True) -> None:
    """``count`` audited actions, then the head signed as a server's periodic signing does."""
    rt = Runtime(settings)
    try:
        if rt.store.last_audit(ORG) is None:
            rt.orgs.create(ORG)  # its first record
            count -= 1
        for i in range(count):
            rt.keys.create(ORG, name=f"k{i}", role="viewer")
        if seal:
            head = rt.store.last_audit(ORG)
            signed = [cp.seq for cp in rt.audit.seal() if cp.org_id == ORG]
            assert signed == [head.seq]  # type: ignore[union-attr]
    finally:
        rt.close(wait=True, timeout=10)


@pytest.fixture
def world(settings: Settings, via: list[str], tmp_path: Path) -> dict[str, Path]:
    """12 records with checkpoints at 5, 10 and 12; the anchor exported through the CLI, and
    the public key exported with openssl's equivalent, both kept outside the data dir."""
    populate(settings)
    outside = tmp_path / "offsite"
    outside.mkdir()
    anchor, pub = outside / "anchor.jsonl", outside / "audit-signing.pub"
    pub.write_text(CheckpointSigner.load(settings.audit_signing_key_path).public_key_pem())
    done = data(via, "audit", "checkpoints", "export", "--out", str(anchor))
    assert (done["appended"], done["newest_seq"], done["org_id"]) == (3, 12, ORG)
    return {"anchor": anchor, "pub": pub}


def verify(via: list[str], world: dict[str, Path], *extra: str) -> Result:
    return cli(via, "audit", "verify", "--anchor", str(world["anchor"]), "--public-key",
               str(world["pub"]), "-o", "json", *extra)  # fmt: skip


# -- a clean log --------------------------------------------------------------------------------
def test_a_clean_log_verifies_against_its_anchor(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    report = json.loads(verify(via, world).stdout)
    assert report["ok"] and (report["count"], report["checkpoints"], report["anchored"]) == (
        12, 3, 3,
    )  # fmt: skip
    # More records later: the anchor still holds (it covers a prefix of the log).
    populate(settings, 3, seal=False)
    assert json.loads(verify(via, world).stdout)["count"] == 15


# -- the tamper cases ---------------------------------------------------------------------------
def test_an_org_whose_records_and_checkpoints_were_all_deleted(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    raw(settings, "DELETE FROM audit_log WHERE org_id = ?", (ORG,))
    raw(settings, "DELETE FROM audit_checkpoints WHERE org_id = ?", (ORG,))
    assert data(via, "audit", "verify")["count"] == 0  # the database alone: "ok, 0 records"
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 1
    assert "is empty" in reason and "held 12 records" in reason and "every record" in reason


def test_the_tail_cut_after_the_newest_checkpoint(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    # Records 11 and 12: the periodic signing covered them (checkpoint 12) before the cut.
    raw(settings, "DELETE FROM audit_log WHERE org_id = ? AND seq > 10", (ORG,))
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 11 and "records 11..12 were deleted" in reason


def test_the_tail_cut_together_with_the_checkpoints_past_it(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    raw(settings, "DELETE FROM audit_log WHERE org_id = ? AND seq > 7", (ORG,))
    raw(settings, "DELETE FROM audit_checkpoints WHERE org_id = ? AND seq > 7", (ORG,))
    assert data(via, "audit", "verify")["ok"]  # the database alone cannot tell
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 8
    assert "the log ends at record 7" in reason and "covers 12 records" in reason


def test_a_rewrite_with_every_checkpoint_deleted(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    rewrite(settings)
    pub = str(world["pub"])
    assert data(via, "audit", "verify", "--public-key", pub)["ok"]  # a consistent chain
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 5 and "missing from the database" in reason


def test_a_rewrite_signed_again_with_the_key_beside_the_database(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    assert settings.audit_signing_key_path.parent == Path(settings.data_dir)  # the default
    rewrite(settings, resign_with=CheckpointSigner.load(settings.audit_signing_key_path))
    # Every signature is good, even checked with the right public key...
    report = data(via, "audit", "verify", "--public-key", str(world["pub"]))
    assert report["ok"] and report["checkpoints"] == 3
    # ...but the anchor, exported before, has the heads of the log as it was.
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 5 and "was rewritten and signed again" in reason


def test_a_signature_by_any_other_key_fails(
    settings: Settings, via: list[str], world: dict[str, Path], tmp_path: Path
) -> None:
    theirs = CheckpointSigner.load(tmp_path / "attacker.key")
    rewrite(settings, resign_with=theirs)
    report, reason = failed(verify(via, world))
    assert report["first_bad_seq"] == 5 and "not the verifying key" in reason
    # An anchor forged with the attacker's key fails against the operator's public key.
    forged = tmp_path / "forged.jsonl"
    lines = []
    for cp in checkpoints_in_db(settings):
        lines.append(anchor_line(cp))
    forged.write_text("".join(lines))
    result = cli(via, "audit", "verify", "--anchor", str(forged), "--public-key",
                 str(world["pub"]), "-o", "json")  # fmt: skip
    assert result.exit_code == 1
    # ... and it passes only with the attacker's own public key, which is the point of keeping
    # the real one: the verifier decides which key to trust, never the database.
    theirs_pub = tmp_path / "theirs.pub"
    theirs_pub.write_text(theirs.public_key_pem())
    result = cli(via, "audit", "verify", "--anchor", str(world["anchor"]), "--public-key",
                 str(theirs_pub), "-o", "json")  # fmt: skip
    _, reason = failed(result)
    assert "not signed by the given public key" in reason


# -- hostile input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        "not json\n",
        "[1, 2]\n",
        '{"org_id": "default", "seq": 5}\n',
        '{"org_id":"default","seq":"5","head_hash":"a","time":"t","signature":"s","key_id":"k"}\n',
        '{"org_id":"default","seq":true,"head_hash":"a","time":"t","signature":"s","key_id":"k"}\n',
        '{"org_id":"default","seq":0,"head_hash":"a","time":"t","signature":"s","key_id":"k"}\n',
        '{"org_id":"default","seq":5,"head_hash":null,"time":"t","signature":"s","key_id":"k"}\n',
        '{"org_id":"default","seq":5,"head_hash":"a","time":"t","signature":"s","key_id":"k",'
        '"extra":1}\n',
    ],
)
def test_a_malformed_anchor_is_a_usage_error_naming_the_line(
    settings: Settings, content: str, tmp_path: Path
) -> None:
    populate(settings, 5, seal=False)
    bad = tmp_path / "bad.jsonl"
    good = anchor_line(checkpoints_in_db(settings)[0])
    bad.write_text(good + content)
    pub = tmp_path / "k.pub"
    pub.write_text(CheckpointSigner.load(settings.audit_signing_key_path).public_key_pem())
    result = cli([], "audit", "verify", "--anchor", str(bad), "--public-key", str(pub), "-o",
                 "json")  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert "line 2" in json.loads(result.stderr)["error"]["message"]
    # The export refuses to append to it too, and leaves it as it was.
    result = cli([], "audit", "checkpoints", "export", "--out", str(bad), "-o", "json")
    assert result.exit_code == 2 and bad.read_text() == good + content


def test_bad_keys_and_files_are_usage_errors(settings: Settings, tmp_path: Path) -> None:
    populate(settings, 5, seal=False)
    anchor = tmp_path / "a.jsonl"
    anchor.write_text("")
    not_pem = tmp_path / "x.pub"
    not_pem.write_bytes(b"\xff\xfe-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    private = tmp_path / "private.pem"
    private.write_bytes(settings.audit_signing_key_path.read_bytes())
    for args in (
        ["--anchor", str(anchor)],  # no public key
        ["--anchor", str(tmp_path / "missing.jsonl"), "--public-key", str(not_pem)],
        ["--public-key", str(not_pem)],
        ["--public-key", str(private)],  # a private key is not a public key
        ["--public-key", str(tmp_path / "missing.pub")],
    ):
        result = cli([], "audit", "verify", *args, "-o", "json")
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert "error" in json.loads(result.stderr)


def test_an_anchor_of_another_org_says_nothing_about_this_one(
    settings: Settings, tmp_path: Path
) -> None:
    populate(settings, 5, seal=False)
    signer = CheckpointSigner.load(settings.audit_signing_key_path)
    unsigned = {"org_id": "other", "seq": 99, "head_hash": "ab", "time": "2030-01-01T00:00:00Z"}
    other = Checkpoint(**unsigned, signature=signer.sign(checkpoint_payload(unsigned)),
                       key_id=signer.key_id)  # fmt: skip
    anchor = tmp_path / "a.jsonl"
    anchor.write_text(anchor_line(other))
    pub = tmp_path / "k.pub"
    pub.write_text(signer.public_key_pem())
    result = cli([], "audit", "verify", "--anchor", str(anchor), "--public-key", str(pub),
                 "-o", "json")  # fmt: skip
    assert result.exit_code == 0 and json.loads(result.stdout)["anchored"] == 0


# -- the export ---------------------------------------------------------------------------------
def test_the_export_appends_only_new_checkpoints_and_never_rewrites_a_line(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    anchor = world["anchor"]
    before = anchor.read_bytes()
    assert [cp.seq for cp in parse_anchor(before.decode(), "a")] == [5, 10, 12]
    again = data(via, "audit", "checkpoints", "export", "--out", str(anchor))
    assert again["appended"] == 0 and anchor.read_bytes() == before  # idempotent
    populate(settings, 4, seal=False)  # records 13..16: a checkpoint at 15
    more = data(via, "audit", "checkpoints", "export", "--out", str(anchor))
    assert (more["appended"], more["newest_seq"]) == (1, 15)
    after = anchor.read_bytes()
    assert after.startswith(before) and after[len(before) :].count(b"\n") == 1
    # To stdout: the same lines, from the start or past a seq.
    assert cli(via, "audit", "checkpoints", "export").stdout.encode() == after
    tail = cli(via, "audit", "checkpoints", "export", "--after", "10").stdout
    assert [json.loads(line)["seq"] for line in tail.splitlines()] == [12, 15]


def test_two_exports_at_once_append_each_checkpoint_once(
    settings: Settings, tmp_path: Path
) -> None:
    populate(settings, 12)
    out = tmp_path / "anchor.jsonl"
    rt = Runtime(settings)
    try:
        barrier = threading.Barrier(4)
        results: list[tuple[int, int]] = []

        def run() -> None:
            barrier.wait()
            results.append(
                append_new(out, ORG, lambda after: rt.audit.checkpoints(ORG, after=after))
            )

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        rt.close(wait=True, timeout=10)
    assert sorted(n for n, _ in results) == [0, 0, 0, 3]
    assert [cp.seq for cp in parse_anchor(out.read_text(), "a")] == [5, 10, 12]


def test_an_incomplete_last_line_is_never_appended_to(settings: Settings, tmp_path: Path) -> None:
    populate(settings, 12)
    out = tmp_path / "anchor.jsonl"
    out.write_text('{"org_id":"default","seq":5')
    result = cli([], "audit", "checkpoints", "export", "--out", str(out), "-o", "json")
    assert (
        result.exit_code == 2 and "incomplete line" in json.loads(result.stderr)["error"]["message"]
    )
    assert out.read_text() == '{"org_id":"default","seq":5'


# -- checkpoints every N records and every T seconds --------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(settings: Settings) -> Iterator[tuple[AuditService, Clock]]:
    store = store_from_settings(settings)
    store.migrate()
    with contextlib.suppress(Conflict):
        store.create_org(ORG, ORG)
    clock = Clock()
    s = settings.replace(audit_checkpoint_every=100, audit_checkpoint_seconds=60)
    try:
        yield AuditService(s, store, clock=clock), clock
    finally:
        store.close()


def act(audit: AuditService, n: int) -> AuditEntry:
    return audit.record(ORG, actor="t", actor_kind="system", action="test.act",
                        target=str(n), outcome="success")  # fmt: skip


def test_a_checkpoint_is_signed_every_t_seconds_while_records_arrive(
    clocked: tuple[AuditService, Clock],
) -> None:
    audit, clock = clocked
    for i in range(3):
        act(audit, i)
    assert audit.store.list_checkpoints(ORG) == []  # 3 records, well within a minute
    clock.now += 59
    act(audit, 3)
    assert audit.store.list_checkpoints(ORG) == []
    clock.now += 60  # the tail began more than a minute ago (by the injected clock)
    fifth = act(audit, 4)
    cps = audit.store.list_checkpoints(ORG)
    assert [(cp.seq, cp.head_hash) for cp in cps] == [(5, fifth.hash)]
    assert cps[0].time.startswith("2030-03-17")  # the checkpoint's time is the clock's
    clock.now += 30
    act(audit, 5)
    assert len(audit.store.list_checkpoints(ORG)) == 1  # 30 s after the checkpoint: not yet
    clock.now += 31
    act(audit, 6)
    assert [cp.seq for cp in audit.store.list_checkpoints(ORG)] == [5, 7]
    assert audit.verify(ORG).ok


def test_the_periodic_signing_covers_an_idle_tail(clocked: tuple[AuditService, Clock]) -> None:
    audit, _ = clocked
    assert audit.seal() == []  # nothing to sign
    for i in range(3):
        act(audit, i)
    assert [cp.seq for cp in audit.seal()] == [3]
    assert audit.seal() == []  # signed at its head: nothing new
    raw_settings = audit.settings
    assert audit.verify(ORG).ok and raw_settings.audit.checkpoint_seconds == 60


def test_no_time_rule_with_zero_seconds(clocked: tuple[AuditService, Clock]) -> None:
    audit, clock = clocked
    off = AuditService(audit.settings.replace(audit_checkpoint_seconds=0), audit.store,
                       clock=clock)  # fmt: skip
    act(off, 0)
    clock.now += 10**6
    act(off, 1)
    assert off.store.list_checkpoints(ORG) == []


# -- the HTTP API -------------------------------------------------------------------------------
@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_app(settings)) as client:
        token = settings.admin_token_path.read_text().strip()
        yield client, {"Authorization": f"Bearer {token}"}


def test_checkpoints_over_http(settings: Settings, api: tuple[TestClient, dict[str, str]]) -> None:
    client, root = api
    admin = {**root, "X-Org-Id": ORG}
    populate(settings)
    resp = client.get("/v1/admin/audit-logs/checkpoints", headers=admin)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
    assert [cp.seq for cp in parse_anchor(resp.text, "http")] == [5, 10, 12]
    later = client.get("/v1/admin/audit-logs/checkpoints?after=5", headers=admin)
    assert [cp.seq for cp in parse_anchor(later.text, "http")] == [10, 12]
    for bad in ("-1", "abc", "1e3", str(2**63), "5;DROP TABLE audit_log"):
        resp = client.get(f"/v1/admin/audit-logs/checkpoints?after={bad}", headers=admin)
        assert resp.status_code == 422, bad
    assert client.get("/v1/admin/audit-logs/checkpoints").status_code == 401
    _, viewer = key_headers(settings, "viewer")
    resp = client.get("/v1/admin/audit-logs/checkpoints", headers=viewer)
    assert resp.status_code == 403  # admin:audit only


def test_verify_with_a_public_key_over_http(
    settings: Settings, api: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, root = api
    admin = {**root, "X-Org-Id": ORG}
    populate(settings)
    pem = CheckpointSigner.load(settings.audit_signing_key_path).public_key_pem()
    url = "/v1/admin/audit-logs/verify"
    report = client.post(url, json={"public_key": pem}, headers=admin).json()
    assert report["ok"] and report["checkpoints"] == 3
    theirs = CheckpointSigner.load(tmp_path / "t.key").public_key_pem()
    report = client.post(url, json={"public_key": theirs}, headers=admin).json()
    assert not report["ok"] and "not the verifying key" in report["reason"]
    for body in ({"public_key": "nope"}, {"public_key": "x" * 5000}, {"public_key": 5}, {},
                 {"public_key": pem, "anchor": []}):  # fmt: skip
        assert client.post(url, json=body, headers=admin).status_code == 422, body
    assert client.post(url, json={"public_key": pem}).status_code == 401
    # since= of the export goes through the one time parser too
    resp = client.get("/v1/admin/audit-logs/export?since=yesterday", headers=admin)
    assert resp.status_code == 422 and "ISO-8601" in resp.text


def key_headers(settings: Settings, role: str) -> tuple[str, dict[str, str]]:  # noqa: N802
    rt = Runtime(settings)
    try:
        key, token = rt.keys.create(ORG, name=f"as-{role}", role=role)
    finally:
        rt.close(wait=True, timeout=10)
    return key.id, {"Authorization": f"Bearer {token}"}


def test_verify_needs_the_public_key_with_an_anchor(settings: Settings) -> None:
    populate(settings, 2, seal=False)
    rt = Runtime(settings)
    try:
        with pytest.raises(InvalidInput, match="public key you hold"):
            rt.audit.verify(ORG, anchor=[])
    finally:
        rt.close(wait=True, timeout=10)


def test_a_server_signs_an_idle_tail_on_its_period(settings: Settings) -> None:
    """The server's periodic signing, wired in its lifespan: records nobody adds to are signed
    within the period (waited for on the condition, with a generous deadline)."""
    import time

    populate(settings, 3, seal=False)  # below every N: nothing signed yet
    assert checkpoints_in_db(settings) == []
    fast = settings.replace(audit_checkpoint_seconds=0.2)
    with TestClient(create_app(fast)):
        deadline = time.monotonic() + 30
        while not checkpoints_in_db(settings):
            assert time.monotonic() < deadline, "no checkpoint was signed"
            time.sleep(0.05)
    assert [cp.seq for cp in checkpoints_in_db(settings)] == [3]


def test_an_anchor_still_verifies_after_retention_pruned_the_head(
    settings: Settings, via: list[str], world: dict[str, Path]
) -> None:
    rt = Runtime(settings)
    try:  # what the retention sweeper does: a signed retention anchor, then the cut
        seventh = rt.store.list_audit(ORG, after_seq=6, limit=1)[0]
        rt.store.prune_audit(ORG, rt.audit.sign_anchor(ORG, 7, seventh.hash))
    finally:
        rt.close(wait=True, timeout=10)
    report = json.loads(verify(via, world).stdout)
    # Checkpoint 5 covered pruned records; 10 and 12 are still required, and found.
    assert report["ok"] and (report["pruned"], report["anchored"]) == (7, 2), report
    raw(settings, "DELETE FROM audit_checkpoints WHERE org_id = ? AND seq = 10", (ORG,))
    _, reason = failed(verify(via, world))
    assert "checkpoint at seq 10" in reason and "missing" in reason
