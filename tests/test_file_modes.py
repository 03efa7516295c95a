"""The data directory is created 0700 and the files holding data or secrets 0600, whatever the
umask; an existing one that others can reach is reported at start-up, not changed."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app
from agent_sdk.config import load_settings

runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def data_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk"


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A usual umask, and the most permissive one: the modes must not depend on it."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_new_data_directory_and_database_are_private(umask: int) -> None:
    result = cli("runs", "create", "--agent", "demo", "--input", "hi", "--local", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert mode(data_dir()) == 0o700
    assert mode(data_dir() / "agent-sdk.db") == 0o600
    assert "warning" not in result.stderr


def test_the_wal_and_shm_files_take_the_database_files_mode(umask: int, tmp_path: Path) -> None:
    from agent_sdk.store.sqlite import SQLiteStore

    path = tmp_path / "new" / "deeper" / "agent-sdk.db"
    store = SQLiteStore(path)
    try:
        store.migrate()
        for name in ("agent-sdk.db", "agent-sdk.db-wal", "agent-sdk.db-shm"):
            assert mode(path.parent / name) == 0o600, name
        assert mode(path.parent) == 0o700
    finally:
        store.close()


def test_the_sqlite_queue_is_private(umask: int, tmp_path: Path) -> None:
    from agent_sdk.queue.sqlite import SQLiteQueue

    path = tmp_path / "q" / "queue.db"
    queue = SQLiteQueue(path)
    try:
        queue.enqueue("run", {"run_id": "r"})
        assert {mode(p) for p in path.parent.iterdir()} == {0o600}
        assert mode(path.parent) == 0o700
    finally:
        queue.close()


def test_secrets_and_state_files_are_private(umask: int) -> None:
    from agent_sdk.core.bootstrap import prepare_local_server

    env = {**os.environ, "AGENT_SDK_AUDIT_HASH_CHAIN": "true"}
    settings = load_settings(env=env)
    prepare_local_server(settings)
    from agent_sdk.hosts.up import write_state

    write_state(settings.server_state_path, "http://127.0.0.1:1")
    assert mode(Path(settings.data_dir)) == 0o700
    for path in (settings.admin_token_path, settings.pepper_path, settings.server_state_path):
        assert mode(path) == 0o600, path
    assert settings.warnings == ()


def test_an_existing_loose_directory_and_database_are_reported_not_changed() -> None:
    assert cli("runs", "list", "--local").exit_code == 0  # creates them private
    db = data_dir() / "agent-sdk.db"
    data_dir().chmod(0o755)
    db.chmod(0o644)
    token = data_dir() / "admin-token"
    token.write_text("asdk_x_y\n")
    token.chmod(0o640)
    result = cli("runs", "list", "--local", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []  # stdout stays data only
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, result.stderr
    assert (
        f"the data directory {data_dir()} is accessible to other users (mode 0755)" in (warnings[0])
    )
    assert warnings[0].endswith(f"run: chmod 700 {data_dir()}")
    assert f"run: chmod 600 {db}" in warnings[1]
    assert "the admin token" in warnings[2] and "to its group (mode 0640)" in warnings[2]
    assert "asdk_x_y" not in result.stderr
    assert (mode(data_dir()), mode(db)) == (0o755, 0o644)  # the operator's choice stands


def test_a_loose_queue_database_is_reported(tmp_path: Path) -> None:
    queue = tmp_path / "queue.db"
    queue.write_bytes(b"")
    queue.chmod(0o666)
    env = {"HOME": str(tmp_path), "AGENT_SDK_QUEUE_DB_PATH": str(queue)}
    (warning,) = load_settings(env=env, cwd=tmp_path).warnings
    assert f"the queue database {queue} is accessible to other users (mode 0666)" in warning
