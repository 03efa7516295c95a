"""The CLI on its real path: Typer parsing, the local backend, the SQLite store in the temporary
data directory of the autouse ``isolated_env`` fixture, and the engine running the runs."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import COMMANDS, app

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = cli(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def data(*args: str) -> Any:
    return json.loads(ok(*args, "-o", "json").stdout)


def assert_one_error(result: Result, *needles: str) -> None:
    """The error contract: it ends stderr as one `error:` line (and maybe one `hint:` line),
    never with a traceback."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    tail = lines[lines.index(errors[0]) + 1 :]
    assert tail == [] or (len(tail) == 1 and tail[0].startswith("hint: ")), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in errors[0], result.stderr


def write(path: str, content: Any) -> str:
    Path(path).write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- runs -----------------------------------------------------------------------------------------


def test_create_runs_the_demo_agent_and_prints_the_finished_run() -> None:
    result = ok("runs", "create", "--agent", "demo", "--input", "hello there", "-o", "json")
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    assert "hello there" in run["output"]
    assert run["id"].startswith("run_")
    assert f"created run {run['id']}" in result.stderr  # messages on stderr, data on stdout


def test_json_is_the_default_when_stdout_is_not_a_terminal() -> None:
    run = json.loads(ok("runs", "create", "--agent", "demo", "--input", "x").stdout)
    assert run["status"] == "succeeded"


def test_follow_prints_every_event_in_order_then_the_output() -> None:
    result = ok("runs", "create", "--agent", "demo", "--input", "hi", "--follow", "-o", "table")
    lines = result.stdout.splitlines()
    seqs = [int(line.split()[0]) for line in lines if line[:3].strip().isdigit()]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = [line.split()[1] for line in lines[: len(seqs)]]
    assert kinds[0] == "run.created" and kinds[-1] == "run.succeeded"
    assert kinds.index("tool.call") < kinds.index("tool.result")
    assert any(line.startswith("  5 tool.call      fs.list {") for line in lines)
    assert "You asked: hi" in "\n".join(lines[len(seqs) :])


def test_follow_in_json_mode_prints_one_event_object_per_line() -> None:
    result = ok("runs", "create", "--agent", "demo", "--input", "hi", "--follow", "-o", "jsonl")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run.succeeded"
    assert len({e["run_id"] for e in events}) == 1


def test_input_from_stdin_and_from_a_file() -> None:
    result = cli("runs", "create", "--agent", "demo", "--input", "-", "-o", "json", input="piped")
    assert json.loads(result.stdout)["input"] == "piped"
    write("in.txt", "from a file")
    run = data("runs", "create", "--agent", "demo", "--input-file", "in.txt")
    assert run["input"] == "from a file"


def test_missing_input_and_bad_metadata_are_usage_errors() -> None:
    result = cli("runs", "create", "--agent", "demo")
    assert result.exit_code == 2
    assert_one_error(result, "needs an input")
    result = cli("runs", "create", "--agent", "demo", "--input", "x", "--metadata", "novalue")
    assert result.exit_code == 2
    assert_one_error(result, "KEY=VALUE")


def test_session_and_metadata_are_recorded() -> None:
    run = data(
        "runs", "create", "--agent", "demo", "--input", "x",
        "--session", "s-1", "--metadata", "team=core", "-m", "ticket=42",
    )  # fmt: skip
    assert run["session_id"] == "s-1"
    assert run["metadata"] == {"team": "core", "ticket": "42"}


def test_a_script_drives_a_tool_call() -> None:
    write(
        "script.json",
        [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "saw: {tool_result}"}],
    )
    Path("marker.txt").write_text("x")
    result = ok(
        "runs", "create", "--agent", "demo", "--input", "x", "--script", "script.json",
        "--follow", "-o", "jsonl",
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines()]
    calls = [e for e in events if e["type"] == "tool.call"]
    assert [c["data"]["name"] for c in calls] == ["fs.list"]
    assert "marker.txt" in events[-1]["data"]["output"]


def test_a_yaml_script_works_too() -> None:
    write("script.yaml", "- text: 'yaml says {input}'\n")
    run = data("runs", "create", "--agent", "demo", "--input", "hi", "--script", "script.yaml")
    assert run["output"] == "yaml says hi"


def test_an_inline_agent_spec_from_a_file() -> None:
    write("agent.toml", 'name = "echo"\nmodel = "scripted"\nscript = [{text = "echo {input}"}]\n')
    run = data("runs", "create", "--agent-file", "agent.toml", "--input", "ping")
    assert run["agent"] == "echo" and run["output"] == "echo ping"


@pytest.mark.parametrize("flag", ["--wait", "--follow"])
def test_a_watched_run_that_fails_exits_5(flag: str) -> None:
    write("fail.json", [{"error": "boom"}])
    result = cli(
        "runs", "create", "--agent", "demo", "--input", "x", "--script", "fail.json", flag
    )  # fmt: skip
    assert result.exit_code == 5, result.stderr
    assert_one_error(result, "failed", "boom")


def test_an_unknown_agent_is_one_clear_error() -> None:
    result = cli("runs", "create", "--agent", "nope", "--input", "x")
    assert result.exit_code == 2  # bad input, like a usage error
    assert_one_error(result, "unknown agent 'nope'")
    assert "hint: " in result.stderr


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "yaml", "table"])
def test_list_parses_back_in_every_format(fmt: str) -> None:
    ids = [data("runs", "create", "--agent", "demo", "--input", f"n{i}")["id"] for i in range(3)]
    out = ok("runs", "list", "-o", fmt).stdout
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert json.loads(rows[0]["usage"])["total_tokens"] > 0  # nested values stay JSON
    elif fmt == "yaml":
        rows = yaml.safe_load(out)
    else:
        header, *lines = out.splitlines()
        assert header.split()[:3] == ["ID", "STATUS", "AGENT"]
        rows = [{"id": line.split()[0], "status": line.split()[1]} for line in lines]
    assert [r["id"] for r in rows] == ids[::-1]  # newest first
    assert {r["status"] for r in rows} == {"succeeded"}


def test_list_paginates_with_limit_and_cursor() -> None:
    ids = [data("runs", "create", "--agent", "demo", "--input", f"n{i}")["id"] for i in range(5)]
    seen: list[str] = []
    args = ["runs", "list", "--limit", "2", "-o", "json"]
    for _ in range(5):
        result = ok(*args)
        seen += [r["id"] for r in json.loads(result.stdout)]
        hints = [line for line in result.stderr.splitlines() if line.startswith("more: ")]
        if not hints:
            break
        args = ["runs", "list", "--limit", "2", "-o", "json", "--cursor", hints[0].split()[-1]]
    assert seen == ids[::-1]


def test_list_filters_by_status_and_session() -> None:
    write("fail.json", [{"error": "boom"}])
    ok("runs", "create", "--agent", "demo", "--input", "x", "--session", "a")
    bad = data("runs", "create", "--agent", "demo", "--input", "y", "--script", "fail.json")
    assert [r["id"] for r in data("runs", "list", "--status", "failed")] == [bad["id"]]
    assert len(data("runs", "list", "--status", "failed,succeeded")) == 2
    assert [r["session_id"] for r in data("runs", "list", "--session", "a")] == ["a"]


def test_a_bad_status_is_a_usage_error() -> None:
    result = cli("runs", "list", "--status", "bogus")
    assert result.exit_code == 2
    assert_one_error(result, "bogus")


def test_show_and_events() -> None:
    run = data("runs", "create", "--agent", "demo", "--input", "x")
    assert data("runs", "show", run["id"])["id"] == run["id"]
    table = ok("runs", "show", run["id"], "-o", "table").stdout
    assert "status:   succeeded" in table
    events = data("runs", "events", run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    later = data("runs", "events", run["id"], "--after", "3")
    assert [e["seq"] for e in later] == list(range(4, len(events) + 1))
    followed = ok("runs", "events", run["id"], "--follow", "--after", "2", "-o", "table").stdout
    assert followed.splitlines()[0].split()[0] == "3"
    assert followed.splitlines()[-1].split()[1] == "run.succeeded"


def test_show_of_an_unknown_run_is_one_error_line() -> None:
    result = cli("runs", "show", "run_nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_error(result, "run_nope")


def test_errors_in_json_mode_are_an_error_object_on_stderr() -> None:
    result = cli("runs", "show", "run_nope", "-o", "json")
    assert result.exit_code == 1
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "not_found" and "run_nope" in error["message"]
    usage = cli("runs", "list", "--status", "bogus", "-o", "json")
    assert usage.exit_code == 2
    assert json.loads(usage.stderr)["error"]["code"] == "usage"


def test_debug_prints_the_traceback() -> None:
    result = cli("runs", "show", "run_nope", "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "error: " in result.stderr


def test_cancel_prints_the_run() -> None:
    run = data("runs", "create", "--agent", "demo", "--input", "x")
    result = ok("runs", "cancel", run["id"], "-o", "json")
    assert json.loads(result.stdout)["status"] == "succeeded"  # finished runs stay as they are
    assert "already succeeded" in result.stderr


# -- sessions, db ---------------------------------------------------------------------------------


def test_sessions_list_and_show() -> None:
    for session in ("alpha", "beta", "alpha"):
        ok("runs", "create", "--agent", "demo", "--input", "x", "--session", session)
    sessions = data("sessions", "list")
    assert [s["id"] for s in sessions] == ["beta", "alpha"]  # newest first
    alpha = data("sessions", "show", "alpha")
    assert alpha["id"] == "alpha" and alpha["run_count"] == 2
    assert "ID" in ok("sessions", "list", "-o", "table").stdout
    missing = cli("sessions", "show", "nope")
    assert missing.exit_code == 1
    assert_one_error(missing, "nope")


def test_db_migrate_then_status() -> None:
    first = ok("db", "migrate", "-o", "json")
    applied = json.loads(first.stdout)
    assert applied and applied[0]["version"] == 1
    again = ok("db", "migrate", "-o", "json")
    assert json.loads(again.stdout) == [] and "up to date" in again.stderr
    status = ok("db", "status", "-o", "table")
    assert status.stdout.splitlines()[0].split() == ["VERSION", "NAME", "APPLIED"]
    assert "pending" not in status.stderr
    assert all(m["applied_at"] for m in data("db", "status"))


def test_db_status_reports_pending_migrations_without_failing() -> None:
    states = data("db", "status")  # a fresh database: nothing applied yet
    assert states and all(m["applied_at"] is None for m in states)
    assert f"{len(states)} pending" in cli("db", "status").stderr


def test_db_refuses_an_explicit_server() -> None:
    result = cli("db", "status", "--server", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert_one_error(result, "local database only")


# -- configuration and environment errors ----------------------------------------------------------


def test_a_missing_profile_is_a_usage_error() -> None:
    result = cli("runs", "list", "--profile", "missing")
    assert result.exit_code == 2
    assert_one_error(result, "profile 'missing'")


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_STREAM_QUEUE_SIZE", "abc")
    result = cli("runs", "list")
    assert result.exit_code == 2
    assert_one_error(result, "AGENT_SDK_STREAM_QUEUE_SIZE")


def test_a_locked_database_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    ok("db", "migrate")
    db = Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk" / "agent-sdk.db"
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        monkeypatch.setenv("AGENT_SDK_SQLITE_BUSY_TIMEOUT", "0.1")
        result = cli("runs", "create", "--agent", "demo", "--input", "x")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code != 0
    assert_one_error(result, "locked")


def test_an_unwritable_data_dir_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("a-file").write_text("not a directory")
    monkeypatch.setenv("AGENT_SDK_DATA_DIR", str(Path("a-file").resolve() / "data"))
    result = cli("runs", "list")
    assert result.exit_code == 1
    assert_one_error(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_a_read_only_data_dir_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    ro = Path("ro").resolve()
    ro.mkdir(mode=0o500)
    monkeypatch.setenv("AGENT_SDK_DATA_DIR", str(ro / "data"))
    result = cli("runs", "list")
    assert result.exit_code == 1
    assert_one_error(result)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_an_unreachable_server_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_test")
    result = cli("runs", "list", "--server", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 1
    assert_one_error(result, "cannot reach")


def test_a_server_that_is_down_is_reported_before_a_missing_credential() -> None:
    # (A server that answers but gets no credential is exit 4: tests/test_cli_first_use.py.)
    result = cli("runs", "list", "--server", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 1
    assert_one_error(result, "cannot reach the agent-sdk server")


def test_a_stale_server_state_file_falls_back_to_local() -> None:
    state = Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk" / "server.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 12345}))
    assert data("runs", "create", "--agent", "demo", "--input", "x")["status"] == "succeeded"


# -- global options, usage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--local", "--org", "default", "runs", "list", "-o", "json"],
        ["runs", "list", "--local", "--org", "default", "-o", "json"],
        ["--profile", "default", "runs", "list", "--no-input", "--local", "-o", "json"],
    ],
)
def test_global_options_work_on_the_root_and_on_the_command(args: list[str]) -> None:
    ok("runs", "create", "--agent", "demo", "--input", "x")
    assert len(json.loads(ok(*args).stdout)) == 1


def test_the_command_value_of_a_global_option_wins() -> None:
    result = cli("--profile", "missing", "runs", "list", "--profile", "default")
    assert result.exit_code == 0, result.stderr
    assert cli("--profile", "missing", "runs", "list").exit_code == 2


def test_local_and_server_together_are_a_usage_error() -> None:
    result = cli("--local", "runs", "list", "--server", "http://x")
    assert result.exit_code == 2
    assert_one_error(result, "--local")


def test_an_unknown_org_is_one_clear_error() -> None:
    result = cli("runs", "create", "--agent", "demo", "--input", "x", "--org", "nobody")
    assert result.exit_code == 1
    assert_one_error(result, "nobody")


def test_usage_errors_exit_2_with_a_suggestion() -> None:
    result = cli("rnus", "list")
    assert result.exit_code == 2
    assert_one_error(result, "Did you mean 'runs'")
    assert cli("runs", "list", "--bogus").exit_code == 2
    assert cli("runs", "list", "-o", "xml").exit_code == 2


def test_a_group_without_a_command_shows_its_help() -> None:
    result = cli("runs")
    assert result.exit_code == 2
    assert "create" in result.stderr and "Traceback" not in result.stderr


def test_version() -> None:
    from agent_sdk import __version__

    assert ok("version", "-o", "table").stdout.strip() == f"agent-sdk {__version__}"
    assert data("version") == {"version": __version__}


def test_help_lists_every_command_with_the_short_help_of_its_table() -> None:
    out = ok("--help").stdout
    for name, (_, short) in COMMANDS.items():
        assert f"  {name}" in out
        sub = ok(*name.split(), "--help").stdout
        assert short.rstrip(".") in " ".join(sub.split()), name  # the table matches the command


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['agent-sdk', '--help']\n"
        "from agent_sdk.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['fastapi', 'uvicorn', 'httpx', 'textual', 'keyring', 'cryptography',\n"
        "         'pydantic', 'yaml', 'sqlite3', 'rich', 'agent_sdk.engine', 'agent_sdk.store']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Usage: agent-sdk" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "LOADED="


def test_local_list_imports_only_the_store_it_reads() -> None:
    # The command CI scripts run in loops: it needs the settings, the SQLite store and the
    # runs, not the HTTP client, the server, the engine, the queue or a TOML parser (no config
    # file here).
    run = json.loads(ok("runs", "create", "--agent", "demo", "--input", "x", "-o", "json").stdout)
    code = (
        "import sys\n"
        "sys.argv = ['agent-sdk', '--local', 'runs', 'list', '-o', 'json']\n"
        "from agent_sdk.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['fastapi', 'uvicorn', 'httpx', 'keyring', 'cryptography', 'pydantic', 'yaml',\n"
        "         'rich', 'tomllib', 'secrets', 'agent_sdk.engine', 'agent_sdk.server',\n"
        "         'agent_sdk.queue', 'agent_sdk.governance', 'agent_sdk.backend.http']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    listed, loaded = result.stdout.strip().rsplit("\n", 1)
    assert [r["id"] for r in json.loads(listed)] == [run["id"]]
    assert loaded == "LOADED="


# -- the error table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("agent_sdk.errors:NotFound", 1),
        ("agent_sdk.errors:BackendUnavailable", 1),
        ("agent_sdk.errors:InvalidInput", 2),
        ("agent_sdk.errors:ConfigError", 2),
        ("typer:Abort", 3),
        ("agent_sdk.errors:AuthenticationError", 4),
        ("agent_sdk.errors:PermissionDenied", 4),
        ("agent_sdk.errors:RunNotSucceeded", 5),
        ("builtins:KeyboardInterrupt", 130),
    ],
)
def test_every_error_maps_to_its_exit_code(
    error: str, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module, name = error.split(":")
    cls = getattr(importlib.import_module(module), name)

    def explode(settings: object) -> None:
        raise cls("it broke") if cls not in (KeyboardInterrupt,) else cls()

    monkeypatch.setattr("agent_sdk.cli.context.make_backend", explode)
    result = cli("runs", "list")
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unexpected_exception_is_an_internal_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(settings: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("agent_sdk.cli.context.make_backend", explode)
    result = cli("runs", "list")
    assert result.exit_code == 1
    assert_one_error(result, "internal error", "kaboom")
    assert "rerun with --debug" in result.stderr
    monkeypatch.setenv("AGENT_SDK_DEBUG", "1")
    assert "Traceback" in cli("runs", "list").stderr


# -- services that are not there ------------------------------------------------------------------


def test_an_unreachable_postgres_is_one_line_naming_the_masked_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("AGENT_SDK_STORAGE_BACKEND", "postgres")
    monkeypatch.setenv("AGENT_SDK_DATABASE_URL", "postgresql://ops:s3cret@127.0.0.1:1/agents")
    result = cli("runs", "list", "--local")  # also loads the Postgres modules, untimed
    assert result.exit_code != 0
    assert_one_error(result, "postgresql://ops:***@127.0.0.1:1/agents", "Connection refused")
    assert "s3cret" not in result.stderr + result.stdout
    # A fresh store again: refused at once (about 0.01 s when quiet), not after the pool's 10 s.
    started = time.monotonic()
    again = cli("runs", "list", "--local")
    assert time.monotonic() - started < 3
    assert again.exit_code == result.exit_code
    assert_one_error(again, "Connection refused")


def test_an_unreachable_redis_queue_keeps_the_run_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_SDK_EXECUTION_MODE", "queue")
    monkeypatch.setenv("AGENT_SDK_QUEUE_BACKEND", "redis")
    monkeypatch.setenv("AGENT_SDK_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")
    result = ok("runs", "create", "-a", "demo", "-i", "hi", "--local", "-o", "json")
    run = json.loads(result.stdout)
    assert run["status"] == "queued"  # accepted: a recovery sweep enqueues it later
    assert "queued for a worker" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert data("runs", "show", run["id"], "--local")["status"] == "queued"
