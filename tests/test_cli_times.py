"""Every time the CLI takes (``--since``, ``--expires``, ``--grace``) goes through one parser
(agent_sdk.times): a text that is not a time is a usage error (exit 2) that names the formats,
never an empty answer with exit 0. Run on the local backend of the autouse ``isolated_env``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app
from agent_sdk.errors import InvalidInput
from agent_sdk.times import parse_duration, resolve_since, resolve_until

runner = CliRunner()

HOSTILE = [
    "yesterday",
    "last week",
    "2025-13-01",
    "2025-01-32T00:00:00Z",
    "1 fortnight",
    "-1h",
    "1h ago",
    "",
    "   ",
    "2025-01-01'; DROP TABLE audit_log; --",
    "9" * 200,
    "\x1b[31m2d",
]


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def data(*args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.strip() else None


def usage_error(result: Result, option: str) -> dict[str, Any]:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""  # nothing that looks like an (empty) answer
    if result.stderr.startswith("{"):
        error: dict[str, Any] = json.loads(result.stderr)["error"]
    else:  # a command without -o: the table form of the same error
        lines = dict(line.split(": ", 1) for line in result.stderr.splitlines())
        error = {"message": lines["error"], "hint": lines["hint"]}
    assert option in error["message"] and "is not a" in error["message"], error
    assert "Traceback" not in result.stderr
    return error


@pytest.mark.parametrize("text", HOSTILE)
def test_audit_export_since_that_is_not_a_time_is_a_usage_error(text: str) -> None:
    data("keys", "create", "--name", "ci")  # a log with a record, so "nothing" would be a lie
    error = usage_error(cli("audit", "export", "--since", text), "--since")
    assert "ISO-8601" in error["hint"] and "2d" in error["hint"]


def test_audit_export_since_accepts_iso_times_dates_and_ages() -> None:
    data("keys", "create", "--name", "ci")
    everything = cli("audit", "export").stdout.splitlines()
    assert len(everything) == 1
    for text in ("2d", "90m", "1w", "3600", "2000-01-01", "2000-01-01T00:00:00+02:00"):
        result = cli("audit", "export", "--since", text)
        assert result.exit_code == 0 and result.stdout.splitlines() == everything, text
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    result = cli("audit", "export", "--since", future)
    assert result.exit_code == 0 and result.stdout == ""  # a real time with nothing after it


@pytest.mark.parametrize("text", HOSTILE)
def test_runs_retry_since_is_checked_before_the_question(text: str) -> None:
    # Without --yes and without a TTY the question would be declined (exit 3): the time is
    # checked first.
    result = cli("runs", "retry", "--status", "failed", "--since", text, "-o", "json")
    usage_error(result, "--since")


@pytest.mark.parametrize("text", [t for t in HOSTILE if t.strip()])
def test_keys_create_expires_that_is_not_a_time_is_a_usage_error(text: str) -> None:
    error = usage_error(cli("keys", "create", "--name", "x", "--expires", text, "-o", "json"),
                        "--expires")  # fmt: skip
    assert "ISO-8601" in error["hint"]
    assert data("keys", "list") == []  # no key was made


def test_keys_create_expires_accepts_a_duration_and_an_iso_time() -> None:
    soon = datetime.now(UTC) + timedelta(days=30)
    made = data("keys", "create", "--name", "a", "--expires", "30d")["key"]["expires_at"]
    assert abs(datetime.fromisoformat(made.replace("Z", "+00:00")) - soon) < timedelta(minutes=5)
    made = data("keys", "create", "--name", "b", "--expires", "2999-01-01")["key"]["expires_at"]
    assert made.startswith("2999-01-01T00:00:00")


@pytest.mark.parametrize("text", ["soon", "1 fortnight", "-5m", "1h30m", "\x00"])
def test_keys_rotate_grace_that_is_not_a_duration_is_a_usage_error(text: str) -> None:
    key = data("keys", "create", "--name", "r")["key"]
    error = usage_error(cli("keys", "rotate", key["id"], "--grace", text, "-o", "json"), "--grace")
    assert "90s" in error["hint"]


def test_the_one_parser() -> None:
    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert resolve_since("2d", now=now) == "2025-01-29T12:00:00.000000Z"
    assert resolve_until("1w", now=now) == "2025-02-07T12:00:00.000000Z"
    assert resolve_since("2025-01-31T14:00:00+02:00") == "2025-01-31T12:00:00.000000Z"
    assert resolve_since("2025-01-31") == "2025-01-31T00:00:00.000000Z"
    assert resolve_since(" 90 ", now=now) == "2025-01-31T11:58:30.000000Z"
    assert resolve_since("99999999999w", now=now).startswith("0001-01-01")
    assert parse_duration("1.5h") == 5400
    for text in HOSTILE:
        with pytest.raises(InvalidInput):
            resolve_since(text)
