"""The admin commands on their real path: orgs, keys and audit on the local backend (the SQLite
store of the autouse ``isolated_env`` fixture), and auth against an in-process server."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.backend.local import LocalBackend
from agent_sdk.cli import audit as audit_cli
from agent_sdk.cli import credentials
from agent_sdk.cli import keys as keys_cli
from agent_sdk.cli.main import app
from agent_sdk.config import Settings, load_settings
from agent_sdk.governance.audit import CSV_COLUMNS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Starlette's note about httpx2
    from starlette.testclient import TestClient

runner = CliRunner()
SERVER = "http://testserver"  # the base URL of Starlette's TestClient


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = cli(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def data(*args: str, input: str | None = None) -> Any:
    return json.loads(ok(*args, "-o", "json", input=input).stdout)


def one_error(result: Result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict, standing in for the OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@pytest.fixture(autouse=True)
def no_keyring() -> Iterator[None]:
    """No test reaches the OS keyring of whoever runs them: the fail backend, as on a headless
    server, unless a test installs the memory one."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An in-process server on the test's database; every HttpBackend the CLI builds talks to
    it. Yields its URL; its bootstrap key is in settings.admin_token_path."""
    from agent_sdk.server.app import create_app

    real = http.HttpBackend
    with TestClient(create_app(settings)) as client:

        def connect(s: Settings, **kw: Any) -> http.HttpBackend:
            return real(s, client=client, **kw)

        monkeypatch.setattr(http, "HttpBackend", connect)
        yield SERVER


def bootstrap_token(settings: Settings) -> str:
    return settings.admin_token_path.read_text().strip()


# -- orgs -----------------------------------------------------------------------------------------


def test_orgs_create_show_list() -> None:
    org = data("orgs", "create", "acme", "--name", "Acme Corp")
    assert (org["id"], org["name"]) == ("acme", "Acme Corp")
    assert data("orgs", "show", "acme") == org
    assert {"acme", "default"} <= {o["id"] for o in data("orgs", "list")}
    table = ok("orgs", "list", "-o", "table").stdout
    assert "Acme Corp" in table and table.startswith("ID")


def test_orgs_errors() -> None:
    ok("orgs", "create", "acme")
    result = cli("orgs", "create", "acme")
    assert result.exit_code == 1 and "acme" in one_error(result)
    assert cli("orgs", "create", "not valid!").exit_code == 2
    assert cli("orgs", "show", "nobody").exit_code == 1


# -- keys -----------------------------------------------------------------------------------------


def test_keys_create_prints_the_token_once_and_listings_never() -> None:
    result = ok("keys", "create", "--name", "ci", "--role", "operator", "-o", "json")
    created = json.loads(result.stdout)
    key, token = created["key"], created["token"]
    assert token.startswith(key["prefix_display"]) and token.endswith(key["last4"])
    assert key["role"] == "operator" and "runs:write" in key["scopes"]
    assert "only this once" in result.stderr and token not in result.stderr
    secret = token[len(key["prefix_display"]) :]
    for args in (["keys", "list"], ["keys", "show", key["id"]]):
        for fmt in ("json", "table", "yaml", "csv"):
            out = ok(*args, "-o", fmt).stdout
            assert key["id"] in out and secret not in out and secret[:-4] not in out
    assert [k["id"] for k in data("keys", "list")] == [key["id"]]
    assert data("keys", "show", key["id"]) == key


def test_keys_create_in_table_mode_puts_the_token_on_a_line_of_its_own() -> None:
    result = ok("keys", "create", "--name", "ci", "-o", "table")
    lines = result.stdout.strip().splitlines()
    token = lines[-1]
    assert token.startswith("asdk_") and " " not in token
    assert sum(token in line for line in lines) == 1
    assert "shown only this once" in result.stderr


def test_keys_create_options() -> None:
    created = data(
        "keys", "create", "--name", "limited", "--scope", "runs:read,sessions:read",
        "--scope", "runs:write", "--expires", "30d", "--rate", "600/m", "--burst", "20",
        "--allow-ip", "10.0.0.0/8", "--allow-ip", "2001:db8::/32",
    )  # fmt: skip
    key = created["key"]
    assert set(key["scopes"]) == {"runs:read", "sessions:read", "runs:write"}
    assert (key["rate_per_second"], key["burst"]) == (10.0, 20)
    assert key["ip_allowlist"] == ["10.0.0.0/8", "2001:db8::/32"]
    from datetime import UTC, datetime, timedelta

    expires = datetime.fromisoformat(key["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    iso = data("keys", "create", "--name", "iso", "--expires", "2099-01-31")["key"]
    assert iso["expires_at"].startswith("2099-01-31T00:00:00")


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "god"],
        ["--scope", "runs:nope"],
        ["--allow-ip", "not-a-network"],
        ["--expires", "soon"],
        ["--expires", "2001-01-01"],
        ["--rate", "fast"],
        ["--burst", "0"],
    ],
)
def test_keys_create_refuses_bad_options_as_usage_errors(args: list[str]) -> None:
    result = cli("keys", "create", "--name", "bad", *args)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert data("keys", "list") == []


def test_keys_rotate_gives_a_new_token_for_the_same_key() -> None:
    first = data("keys", "create", "--name", "ci")
    key_id = first["key"]["id"]
    result = ok("keys", "rotate", key_id, "--grace", "1h", "-o", "json")
    rotated = json.loads(result.stdout)
    assert rotated["key"]["id"] == key_id and rotated["token"] != first["token"]
    assert rotated["token"].endswith(rotated["key"]["last4"])
    assert rotated["key"]["rotated_at"] and "1h" in result.stderr
    assert data("keys", "show", key_id)["last4"] == rotated["key"]["last4"]
    assert cli("keys", "rotate", key_id, "--grace", "a while").exit_code == 2


def test_keys_revoke_without_yes_and_without_a_terminal_is_refused() -> None:
    key_id = data("keys", "create", "--name", "ci")["key"]["id"]
    result = cli("keys", "revoke", key_id)
    assert result.exit_code == 2
    assert "confirmation" in one_error(result) and "--yes" in result.stderr
    assert data("keys", "show", key_id)["revoked_at"] is None
    revoked = data("keys", "revoke", key_id, "--yes")
    assert revoked["revoked_at"] and data("keys", "show", key_id)["revoked_at"]
    assert cli("keys", "rotate", key_id).exit_code == 1  # a revoked key stays revoked


def test_keys_revoke_asks_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_cli, "_interactive", lambda: True)
    key_id = data("keys", "create", "--name", "ci")["key"]["id"]
    declined = cli("keys", "revoke", key_id, input="n\n")
    assert declined.exit_code == 3
    assert "Revoke API key" in declined.stderr and "ci" in declined.stderr
    assert data("keys", "show", key_id)["revoked_at"] is None
    no_input = cli("keys", "revoke", key_id, "--no-input")
    assert no_input.exit_code == 2 and "--no-input" in one_error(no_input)
    accepted = ok("keys", "revoke", key_id, "-o", "json", input="y\n")
    # (CliRunner echoes the typed answer to stdout, as a terminal would show it.)
    assert json.loads(accepted.stdout[accepted.stdout.index("{") :])["revoked_at"]


def test_unknown_keys_are_one_error_line() -> None:
    for args in (["show", "nope"], ["rotate", "nope"], ["revoke", "nope", "--yes"]):
        result = cli("keys", *args)
        assert result.exit_code == 1 and "nope" in one_error(result)


def test_another_orgs_keys_are_not_found() -> None:
    ok("orgs", "create", "acme")
    theirs = data("keys", "create", "--name", "theirs", "--org", "acme")["key"]["id"]
    assert cli("keys", "show", theirs).exit_code == 1
    assert cli("keys", "revoke", theirs, "--yes").exit_code == 1
    assert data("keys", "list") == []
    assert data("keys", "show", theirs, "--org", "acme")["revoked_at"] is None


# -- audit ----------------------------------------------------------------------------------------


def test_audit_tail_shows_actions_and_their_actor() -> None:
    key_id = data("keys", "create", "--name", "ci")["key"]["id"]
    ok("keys", "rotate", key_id)
    ok("keys", "revoke", key_id, "--yes")
    entries = data("audit", "tail")
    assert [(e["seq"], e["action"], e["target"]) for e in entries] == [
        (1, "keys.create", key_id), (2, "keys.rotate", key_id), (3, "keys.revoke", key_id)
    ]  # fmt: skip
    assert {e["actor"] for e in entries} == {data("auth", "status")["subject"]}
    assert [e["seq"] for e in data("audit", "tail", "--after", "1")] == [2, 3]
    assert [e["seq"] for e in data("audit", "tail", "--limit", "1")] == [3]
    table = ok("audit", "tail", "-o", "table").stdout
    assert "keys.rotate" in table and table.startswith("SEQ")


def test_audit_tail_follow_polls_for_new_records(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    ok("keys", "create", "--name", "first")
    pauses = []

    def pause() -> None:
        pauses.append(1)
        if len(pauses) > 1:
            raise KeyboardInterrupt
        backend = LocalBackend(load_settings())  # another writer, while the tail waits
        try:
            backend.create_key(name="second")
        finally:
            backend.close()

    monkeypatch.setattr(audit_cli, "_pause", pause)
    result = cli("audit", "tail", "--follow", "-o", "jsonl")
    assert result.exit_code == 130
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["seq"], r["details"]["name"]) for r in records] == [(1, "first"), (2, "second")]
    assert cli("audit", "tail", "--follow", "-o", "csv").exit_code == 2


def test_audit_export_streams_jsonl_and_csv(tmp_path: Path) -> None:
    tokens = [data("keys", "create", "--name", f"k{i}")["token"] for i in range(3)]
    jsonl = ok("audit", "export").stdout
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3]
    rows = list(csv.reader(io.StringIO(ok("audit", "export", "--format", "csv").stdout)))
    assert rows[0] == CSV_COLUMNS and len(rows) == 4
    assert [json.loads(row[CSV_COLUMNS.index("details")])["name"] for row in rows[1:]] == [
        "k0", "k1", "k2"
    ]  # fmt: skip
    out = tmp_path / "audit.csv"
    result = ok("audit", "export", "--format", "csv", "--out", str(out))
    assert out.read_bytes() == ok("audit", "export", "--format", "csv").stdout_bytes
    assert "wrote 4 lines" in result.stderr and result.stdout == ""
    since = ok("audit", "export", "--since", records[-1]["time"]).stdout
    assert [json.loads(line)["seq"] for line in since.splitlines()] == [3]
    everything = jsonl + out.read_text()
    assert not any(token in everything for token in tokens)
    assert cli("audit", "export", "--format", "xml").exit_code == 2


def test_audit_verify_passes_on_a_clean_log_and_names_a_tampered_record(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("AGENT_SDK_AUDIT_HASH_CHAIN", "true")
    ok("orgs", "create", "acme")
    ok("keys", "create", "--name", "ci", "--org", "acme")
    report = data("audit", "verify", "--org", "acme")
    assert report["ok"] and report["count"] == 2 and report["first_bad_seq"] is None
    assert "2 records verified" in ok("audit", "verify", "--org", "acme").stderr

    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute(
            "UPDATE audit_log SET details = ? WHERE org_id = 'acme' AND seq = 1",
            (json.dumps({"x": 1}),),
        )
    db.close()
    result = cli("audit", "verify", "--org", "acme", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_seq"] == 1
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "audit_verification_failed" and "record 1" in error["message"]
    table = cli("audit", "verify", "--org", "acme", "-o", "table")
    assert table.exit_code == 1 and "record 1" in one_error(table)


def test_audit_verify_on_a_default_install_passes() -> None:
    # The hash chain is on by default: a fresh install has something to verify.
    ok("keys", "create", "--name", "ci")
    report = data("audit", "verify")
    assert report["ok"] and report["count"] == 1 and report["unchained"] == 0


def test_audit_verify_of_an_unchained_log_says_how_to_chain_it(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("AGENT_SDK_AUDIT_HASH_CHAIN", "false")
    ok("keys", "create", "--name", "ci")
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert "AGENT_SDK_AUDIT_HASH_CHAIN" in result.stderr and "--allow-unchained" in result.stderr
    # Said plainly, and exit 0, when the operator accepts a log without a chain.
    result = cli("audit", "verify", "--allow-unchained", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["unchained"] == 1
    assert "the hash chain is off" in result.stderr and "nothing was verified" in result.stderr
    # ... but not for a chained log whose hashes were stripped (its checkpoint tells).
    monkeypatch.setenv("AGENT_SDK_AUDIT_HASH_CHAIN", "true")
    monkeypatch.setenv("AGENT_SDK_AUDIT_CHECKPOINT_EVERY", "2")
    ok("keys", "create", "--name", "ci2")
    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute("UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE seq = 2")
    db.close()
    assert cli("audit", "verify", "--allow-unchained").exit_code == 1


# -- auth -----------------------------------------------------------------------------------------


def test_login_without_a_keyring_falls_back_to_a_0600_file(server: str, settings: Settings) -> None:
    token = bootstrap_token(settings)
    result = ok("auth", "login", "--server", server, "-o", "json", input=token + "\n")
    info = json.loads(result.stdout)
    assert info["source"] == "file" and info["subject"].startswith("api_key:")
    assert "warning:" in result.stderr and "0600" in result.stderr
    path = credentials.credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["servers"][server]["api_key"] == token
    assert token not in result.stdout + result.stderr

    status = ok("auth", "status", "--server", server, "-o", "json").stdout
    assert token not in status and token[-30:] not in status
    assert json.loads(status)["source"] == "file"
    assert ok("auth", "token", "--server", server).stdout == token + "\n"
    assert data("keys", "list", "--server", server)[0]["name"] == "bootstrap"

    ok("auth", "logout", "--server", server)
    assert not path.exists()
    assert cli("auth", "token", "--server", server).exit_code == 4
    assert cli("keys", "list", "--server", server).exit_code == 4


def test_login_uses_the_os_keyring_when_there_is_one(
    server: str, settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    credentials.file_set(server, "asdk_an_older_key")
    token = bootstrap_token(settings)
    result = ok("auth", "login", "--server", server + "/", input=token)
    assert "warning" not in result.stderr
    assert memory_keyring.passwords == {("agent-sdk", server): token}
    # The file keeps only the note that the key is in the keyring: no secret, and not the
    # older key.
    text = credentials.credentials_path().read_text()
    assert json.loads(text)["servers"] == {server: {"keyring": True}}
    assert data("auth", "status", "--server", server)["source"] == "keyring"
    assert ok("auth", "token", "--server", server).stdout == token + "\n"
    result = ok("auth", "logout", "--server", server)
    assert "from the keyring" in result.stderr
    assert memory_keyring.passwords == {} and not credentials.credentials_path().exists()


def test_keyring_is_not_imported_for_a_server_never_logged_in_with_it(
    server: str, settings: Settings
) -> None:
    """The keyring costs ~200 ms to load; a call to a server whose key is in the file or is the
    bootstrap key of `up` must not pay it."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from agent_sdk.cli import credentials\n"
        "from agent_sdk.config import load_settings\n"
        "credentials.file_set('http://a', 'asdk_a')\n"
        "s = load_settings()\n"
        "found = credentials.find(s, 'http://a', None)\n"
        "none = credentials.find(s, 'http://b', None)\n"
        "print(found.source, none, 'keyring' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["file", "None", "False"], result.stderr


def test_login_refuses_a_key_the_server_refuses(server: str) -> None:
    result = cli("auth", "login", "--server", server, input="asdk_0000000000000000_nope\n")
    assert result.exit_code == 4
    assert not credentials.credentials_path().exists()
    assert cli("auth", "login", "--server", server, input="\n").exit_code == 2


def test_the_environment_wins_over_stored_keys(
    server: str, settings: Settings, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("auth", "login", "--server", server, input=bootstrap_token(settings))
    assert data("auth", "status", "--server", server)["source"] == "keyring"
    monkeypatch.setenv("AGENT_SDK_API_KEY", bootstrap_token(settings))
    status = ok("auth", "status", "--server", server, "-o", "json").stdout
    assert json.loads(status)["source"] == "env"
    assert bootstrap_token(settings) not in status
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_from_the_environment")
    assert ok("auth", "token", "--server", server).stdout == "asdk_from_the_environment\n"
    assert cli("keys", "list", "--server", server).exit_code == 4  # env wins, and is wrong


def test_a_rotated_token_works_for_its_grace_period_and_a_revoked_one_never(
    server: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI and the server: which tokens authenticate after rotate and revoke."""
    ok("auth", "login", "--server", server, input=bootstrap_token(settings))
    created = data("keys", "create", "--name", "ci", "--role", "operator", "--server", server)
    key_id, first = created["key"]["id"], created["token"]

    def works(token: str) -> bool:
        monkeypatch.setenv("AGENT_SDK_API_KEY", token)
        try:
            result = cli("auth", "status", "--server", server, "-o", "json")
        finally:
            monkeypatch.delenv("AGENT_SDK_API_KEY")
        assert result.exit_code in (0, 4), result.stderr
        return result.exit_code == 0

    assert works(first)
    second = data("keys", "rotate", key_id, "--grace", "1h", "--server", server)["token"]
    assert works(first) and works(second)  # the old token, within its grace period
    third = data("keys", "rotate", key_id, "--server", server)["token"]
    assert works(third) and not works(second) and not works(first)  # no grace: at once
    data("keys", "revoke", key_id, "--yes", "--server", server)
    assert not works(third)
    actions = [e["action"] for e in data("audit", "tail", "--server", server)]
    assert actions[-4:] == ["keys.create", "keys.rotate", "keys.rotate", "keys.revoke"]


def test_auth_token_prints_the_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_for_scripts")
    result = ok("auth", "token")
    assert result.stdout == "asdk_for_scripts\n"


def test_auth_token_without_a_credential_exits_4() -> None:
    assert cli("auth", "token").exit_code == 4  # the local database needs none
    result = cli("auth", "token", "--server", "http://127.0.0.1:9")
    assert result.exit_code == 4 and "auth login" in result.stderr


def test_auth_status_of_the_local_database() -> None:
    status = data("auth", "status")
    assert status["source"] == "local" and status["server"] is None
    assert status["subject"].startswith("local:") and "admin:keys" in status["scopes"]


def test_auth_status_names_the_bootstrap_key_of_a_running_up_server(
    server: str, settings: Settings
) -> None:
    settings.server_state_path.write_text(json.dumps({"url": server, "pid": os.getpid()}))
    status = ok("auth", "status", "-o", "json").stdout
    info = json.loads(status)
    assert info["source"] == "bootstrap" and info["server"] == server
    assert info["where"] == str(settings.admin_token_path)
    assert bootstrap_token(settings) not in status


def test_a_server_without_a_credential_says_how_to_log_in(server: str) -> None:
    result = cli("auth", "status", "--server", server, "-o", "json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["source"] is None
    assert "auth login" in result.stderr


def test_auth_login_refuses_local() -> None:
    assert cli("auth", "login", "--local", input="x").exit_code == 2


def test_auth_help_does_not_import_keyring() -> None:
    code = (
        "import sys\n"
        "from agent_sdk.cli.main import main\n"
        "for args in (['auth', '--help'], ['keys', 'create', '--help']):\n"
        "    sys.argv = ['agent-sdk', *args]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print('LOADED=' + ','.join(m for m in ('keyring', 'httpx') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "LOADED="
