"""The CLI prints any run a store holds, on SQLite and on PostgreSQL (issue 11, item 4).

A run whose stored text holds a lone surrogate (written before the server refused such text, or
around it) made ``runs cancel`` and every other rendering crash with UnicodeEncodeError. The
output layer now writes U+FFFD in its place, in every format.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from raw_sql import raw_sql
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app
from agent_sdk.config import load_settings

runner = CliRunner()
FORMATS = ["json", "jsonl", "table", "yaml", "csv"]
# JSON text with escapes of lone surrogates: both stores hold it (it is ASCII).
BAD_METADATA = '{"k": "a\\udfffb", "\\ud800": [1, "\\ude00"]}'
SHOWN_METADATA = {"k": "a\ufffdb", "\ufffd": [1, "\ufffd"]}


def ok(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
    assert result.exception is None, (args, result.exception)
    return result


@pytest.fixture
def bad_run(engine: str) -> str:
    run = json.loads(ok("runs", "create", "--agent", "demo", "--input", "x", "-o", "json").stdout)
    settings = load_settings(env=dict(os.environ), cwd=Path.cwd())
    raw_sql(settings, "UPDATE runs SET metadata = ? WHERE id = ?", (BAD_METADATA, run["id"]))
    data = '{"output": "done \\udfff"}'
    raw_sql(settings, "UPDATE events SET data = ? WHERE run_id = ? AND type = ?",
            (data, run["id"], "run.succeeded"))  # fmt: skip
    rid: str = run["id"]
    return rid


def parsed(fmt: str, text: str) -> Any:
    if fmt == "json":
        return json.loads(text)
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    if fmt == "yaml":
        return yaml.safe_load(text)
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return text


@pytest.mark.parametrize("fmt", FORMATS)
def test_show_list_cancel_and_events_print_a_run_holding_lone_surrogates(
    bad_run: str, fmt: str
) -> None:
    for args in (
        ("runs", "show", bad_run),
        ("runs", "list"),
        ("runs", "cancel", bad_run),
        ("runs", "events", bad_run),
    ):
        result = ok(*args, "-o", fmt)
        out = result.stdout
        if not (fmt == "table" and args[1] == "list"):  # the table shows no metadata
            assert "\ufffd" in out, (args, fmt, out)
        value = parsed(fmt, out)
        if fmt in ("json", "yaml") and args[1] in ("show", "cancel"):
            assert value["metadata"] == SHOWN_METADATA, (args, value)
        if fmt == "json" and args[1] == "list":
            assert value[0]["metadata"] == SHOWN_METADATA, value
        if fmt == "json" and args[1] == "events":
            assert value[-1]["data"] == {"output": "done \ufffd"}, value
        if fmt == "csv" and args[1] == "show":
            assert json.loads(value[0]["metadata"]) == SHOWN_METADATA, value


def test_follow_prints_the_events_of_a_run_holding_lone_surrogates(bad_run: str) -> None:
    for fmt in ("table", "jsonl"):
        out = ok("runs", "events", bad_run, "--follow", "-o", fmt).stdout
        assert "done \ufffd" in out, (fmt, out)


def test_a_terminal_set_to_ascii_still_prints_the_run(bad_run: str) -> None:
    # A real process: its streams take their encoding from PYTHONIOENCODING, as from a locale.
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    cmd = [sys.executable, "-c", "from agent_sdk.cli.main import main; main()"]
    for args in (("runs", "show", bad_run, "-o", "table"), ("runs", "cancel", bad_run)):
        proc = subprocess.run(
            [*cmd, *args, "-o", "json"], env=env, capture_output=True, timeout=120, check=False
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        # Click writes UTF-8 to a stream it finds set to ASCII; the text is printable in it.
        shown = json.loads(proc.stdout.decode("utf-8"))["metadata"]
        assert shown == SHOWN_METADATA, shown


def test_the_cli_prints_a_sqlite_row_holding_bytes_that_are_not_utf8() -> None:
    # SQLite only (the default store): PostgreSQL holds only valid UTF-8 text.
    run = json.loads(ok("runs", "create", "--agent", "demo", "--input", "x", "-o", "json").stdout)
    settings = load_settings(env=dict(os.environ), cwd=Path.cwd())
    sql = "UPDATE runs SET input = CAST(? AS TEXT) WHERE id = ?"
    raw_sql(settings, sql, (b"in \xed\xbf\xbf put", run["id"]))
    for args in (("runs", "show", run["id"]), ("runs", "list"), ("runs", "cancel", run["id"])):
        for fmt in ("json", "table"):
            out = ok(*args, "-o", fmt).stdout
            assert "in \ufffd\ufffd\ufffd put" in out, (args, fmt, out)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--input", "a\udcff"), "input"),  # an argument that is not UTF-8, as Python reads it
        (("--input", "x", "-m", "k=\udcff"), "metadata.k"),
        (("--input", "x", "-m", "\udcff=v"), "metadata.\ufffd"),
        (("--input", "x", "--session", "s\udcff"), "session_id"),
    ],
)
def test_creating_a_run_with_text_no_store_can_hold_is_one_error_and_stores_nothing(
    engine: str, args: tuple[str, ...], field: str
) -> None:
    result = runner.invoke(app, ["runs", "create", "--agent", "demo", *args, "-o", "json"])
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)  # usage
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error["code"] == "invalid_input", error
    assert error["message"].startswith(f"{field} holds a lone surrogate"), error
    assert json.loads(ok("runs", "list", "-o", "json").stdout) == []
