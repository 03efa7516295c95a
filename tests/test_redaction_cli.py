"""``agent-sdk orgs redaction ...`` on its real path: the local backend on SQLite and Postgres,
and an in-process server reached over HTTP (the CLI's HttpBackend on Starlette's TestClient),
with ``-o json`` parsed. Exit codes and error lines are checked for bad input."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.cli.main import app
from agent_sdk.config import Settings, load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

runner = CliRunner()
SERVER = "http://testserver"


@pytest.fixture
def where(engine: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The global options that reach the local deployment under test: the SQLite file of the
    test's data directory, or a Postgres schema of its own (the ``server`` fixture is the same
    over HTTP)."""
    monkeypatch.setenv("AGENT_SDK_PII_REDACTION_ENABLED", "true")
    return ["--local"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    from agent_sdk.server.app import create_app

    monkeypatch.setenv("AGENT_SDK_PII_REDACTION_ENABLED", "true")
    settings = load_settings(env=dict(os.environ), cwd=Path.cwd())
    real = http.HttpBackend
    with TestClient(create_app(settings)) as client:

        def connect(s: Settings, **kw: Any) -> http.HttpBackend:
            return real(s, client=client, **kw)

        monkeypatch.setattr(http, "HttpBackend", connect)
        monkeypatch.setenv("AGENT_SDK_API_KEY", settings.admin_token_path.read_text().strip())
        yield ["--server", SERVER]


def cli(where: list[str], *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, [*args, *where], input=input)


def data(where: list[str], *args: str, input: str | None = None) -> Any:
    result = cli(where, *args, "-o", "json", input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def lifecycle(where: list[str]) -> None:
    shown = data(where, "orgs", "redaction", "show")
    assert shown["enabled"] is True and shown["disabled"] == [] and shown["patterns"] == []
    assert [d["name"] for d in shown["detectors"]][:3] == ["bearer_token", "secret", "email"]

    view = data(where, "orgs", "redaction", "set", "--disable", "ip",
                "--pattern", r"employee_id=EMP-\d{6}")  # fmt: skip
    assert view["disabled"] == ["ip"]
    assert view["patterns"] == [
        {"name": "employee_id", "regex": r"EMP-\d{6}", "placeholder": "[EMPLOYEE_ID]"}
    ]
    view = data(where, "orgs", "redaction", "add-pattern", "ticket", r"TCK-\d{5}",
                "--placeholder", "[TICKET]")  # fmt: skip
    assert [p["name"] for p in view["patterns"]] == ["employee_id", "ticket"]
    preview = data(where, "orgs", "redaction", "preview", "TCK-12345 EMP-123456 a@b.io 10.0.0.1")
    assert preview == {
        "redacted": "[TICKET] [EMPLOYEE_ID] [EMAIL] 10.0.0.1",
        "findings": {"employee_id": 1, "ticket": 1, "email": 1},
    }
    stdin = data(where, "orgs", "redaction", "preview", "-", input="call +44 20 7946 0958")
    assert stdin["redacted"] == "call [PHONE]"

    # show -o json, edited, set back from a file and from stdin.
    shown = data(where, "orgs", "redaction", "show")
    shown["disabled"] = ["phone"]
    Path("policy.json").write_text(json.dumps(shown))
    view = data(where, "orgs", "redaction", "set", "--file", "policy.json")
    assert view["disabled"] == ["phone"] and len(view["patterns"]) == 2
    view = data(where, "orgs", "redaction", "set", "-f", "-", "--disable", "ip",
                input=json.dumps({"patterns": []}))  # fmt: skip
    assert view["disabled"] == ["ip"] and view["patterns"] == []

    data(where, "orgs", "redaction", "add-pattern", "ticket", r"TCK-\d{5}")
    view = data(where, "orgs", "redaction", "remove-pattern", "ticket")
    assert view["patterns"] == []
    assert "not found" in error(cli(where, "orgs", "redaction", "remove-pattern", "ticket"), 1)

    declined = cli(where, "orgs", "redaction", "reset")  # no terminal to ask on
    assert "--yes" in declined.stderr and declined.exit_code == 2
    view = data(where, "orgs", "redaction", "reset", "--yes")
    assert view["disabled"] == [] and view["patterns"] == []

    table = cli(where, "orgs", "redaction", "show", "-o", "table")
    assert table.exit_code == 0 and "custom patterns" in table.stdout


def test_the_policy_lifecycle_locally(where: list[str]) -> None:
    lifecycle(where)


def test_the_policy_lifecycle_on_a_server(server: list[str]) -> None:
    lifecycle(server)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["add-pattern", "emp", "("], "does not compile"),
        (["add-pattern", "emp", r"\d+"], "must be bounded"),
        (["add-pattern", "emp", r"(a{1,100}){1,100}"], "ways to match"),
        (["add-pattern", "Bad Name", "x"], "invalid custom pattern name"),
        (["add-pattern", "emp", "EMP", "--placeholder", "EMP"], "invalid placeholder"),
        (["set", "--disable", "nope"], "unknown built-in detector"),
        (["set", "--pattern", "no-equals-sign"], "is not NAME=REGEX"),
        (["set"], "give --file, --disable or --pattern"),
        (["set", "--file", "missing.json"], "cannot read"),
    ],
)
def test_bad_input_is_a_usage_error(where: list[str], args: list[str], needle: str) -> None:
    assert needle in error(cli(where, "orgs", "redaction", *args), 2)
    assert data(where, "orgs", "redaction", "show")["patterns"] == []


def test_bad_input_over_http_is_the_same_usage_error(server: list[str]) -> None:
    assert "must be bounded" in error(
        cli(server, "orgs", "redaction", "add-pattern", "emp", r"\d+"), 2
    )
    assert "not found" in error(cli(server, "orgs", "redaction", "remove-pattern", "nope"), 1)


def test_a_policy_file_that_is_not_a_policy(where: list[str]) -> None:
    Path("list.json").write_text("[1, 2]")
    Path("broken.json").write_text("{")
    Path("odd.json").write_text(json.dumps({"disabled": "ip"}))
    assert "JSON object" in error(cli(where, "orgs", "redaction", "set", "-f", "list.json"), 2)
    assert "not JSON" in error(cli(where, "orgs", "redaction", "set", "-f", "broken.json"), 2)
    odd = cli(where, "orgs", "redaction", "set", "-f", "odd.json", "--disable", "ip")
    assert "must be a list" in error(odd, 2)


def test_another_org_keeps_its_own_policy(where: list[str]) -> None:
    data(where, "orgs", "create", "acme")
    data(where, "orgs", "redaction", "add-pattern", "emp", r"EMP-\d{6}", "--org", "acme")
    assert data(where, "orgs", "redaction", "show")["patterns"] == []
    assert len(data(where, "orgs", "redaction", "show", "--org", "acme")["patterns"]) == 1
    result = cli(where, "orgs", "redaction", "show", "--org", "ghost")
    assert "not found" in error(result, 1)
