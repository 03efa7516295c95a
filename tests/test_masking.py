"""Credentials in URLs never reach what the CLI prints: one masking helper, used everywhere."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app
from agent_sdk.masking import mask_url, scrub, url_secrets

runner = CliRunner()
SECRET = "hunter2-Pa55"


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@127.0.0.1:9/", "http://user:***@127.0.0.1:9/"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
        (
            "https://h/x?token=pw&api_key=pw&X-Amz-Signature=pw",
            "https://h/x?token=***&api_key=***&X-Amz-Signature=***",
        ),  # fmt: skip
        ("https://h/cb#access_token=pw&state=1", "https://h/cb#access_token=***&state=1"),
        (
            "kafka://u:pw@a:9092,b:9092/t?sasl.password=pw",
            "kafka://u:***@a:9092,b:9092/t?sasl.password=***",
        ),  # fmt: skip
        ("u:pw@a:9092", "u:***@a:9092"),  # Kafka servers without a scheme
        # Characters a URL should have encoded: the password is still masked whole.
        ("http://u:p/w@h:1/x", "http://u:***@h:1/x"),
        ("http://u:p@w#x@h:1/", "http://u:***@h:1/"),
        ("http://u:p?w@h:1/", "http://u:***@h:1/"),
        # Malformed URLs that urlsplit refuses still get masked.
        ("http://u:pw@[::1/x", "http://u:***@[::1/x"),
        ("http://u:pw@h:99999999/", "http://u:***@h:99999999/"),
        # A URL inside a parameter (SQS's dead_queue=) is masked too.
        (
            "sqs+https://h/1/q?dead_queue=https%3A%2F%2Fk%3Apw%40h%2F1%2Fd",
            "sqs+https://h/1/q?dead_queue=https://k:***@h/1/d",
        ),  # fmt: skip
        # Nothing to hide: unchanged.
        ("sqlite:///var/lib/a.db", "sqlite:///var/lib/a.db"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://h/x?q=a:b@c", "https://h/x?q=a:b@c"),
        ("", ""),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "pw" not in mask_url(url).replace("pwd", "")


def test_url_secrets_and_scrub_cover_every_spelling() -> None:
    url = "postgresql://u:p%40ss%2Fw@h/db?password=second"
    secrets = url_secrets(url)
    assert set(secrets) == {"p%40ss%2Fw", "p@ss/w", "second"}
    text = "driver said: auth failed for p@ss/w (raw p%40ss%2Fw), password=second"
    assert scrub(text, secrets) == "driver said: auth failed for *** (raw ***), password=***"
    assert url_secrets("http://127.0.0.1:8765/") == ()


# -- the CLI, against an unreachable loopback server URL that carries credentials ------------


def _server() -> str:
    return f"http://admin:{SECRET}@127.0.0.1:{closed_port()}/?token={SECRET}x"


def _no_secret(result: Result) -> None:
    assert SECRET not in result.stdout + result.stderr, result.stderr
    assert SECRET[:7] not in result.stdout + result.stderr


@pytest.mark.parametrize("output", ["table", "json"])
def test_an_unreachable_server_never_echoes_its_password(
    output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_test")
    result = cli("runs", "list", "--server", _server(), "-o", output)
    assert result.exit_code == 1, result.stderr
    _no_secret(result)
    assert "admin:***@127.0.0.1" in result.stderr
    if output == "json":
        error = json.loads(result.stderr)["error"]
        assert "cannot reach" in error["message"] and "token=***" in error["message"]


@pytest.mark.parametrize("output", ["table", "json"])
def test_no_credential_for_a_server_never_echoes_its_password(output: str) -> None:
    result = cli("runs", "list", "--server", _server(), "-o", output)
    assert result.exit_code in (1, 4), result.stderr  # 1 once "cannot reach" is checked first
    _no_secret(result)
    assert "admin:***@127.0.0.1" in result.stderr


def test_an_unusable_server_url_never_echoes_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_test")
    for bad in (f"http://admin:{SECRET}@[::1", f"ftp://admin:{SECRET}@127.0.0.1:{closed_port()}"):
        result = cli("runs", "list", "--server", bad, "-o", "json")
        assert result.exit_code != 0
        _no_secret(result)
        assert "admin:***@" in json.loads(result.stderr)["error"]["message"]


def test_auth_commands_never_echo_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server()
    status = cli("auth", "status", "--server", server, "-o", "json")
    assert status.exit_code != 0
    _no_secret(status)
    assert json.loads(status.stdout)["server"].startswith("http://admin:***@127.0.0.1:")
    login = cli("auth", "login", "--server", server, "-o", "json", input="asdk_x_y\n")
    assert login.exit_code == 1
    _no_secret(login)
    logout = cli("auth", "logout", "--server", server)
    _no_secret(logout)
    monkeypatch.setenv("AGENT_SDK_API_KEY", "asdk_test")
    _no_secret(cli("auth", "status", "--server", server))


def test_credentials_are_stored_under_a_url_without_its_password() -> None:
    from agent_sdk.cli import credentials as creds

    path = creds.file_set(f"http://admin:{SECRET}@127.0.0.1:1/?token={SECRET}", "asdk_x_y")
    assert SECRET not in path.read_text()
    found = creds.file_get(f"http://admin:{SECRET}@127.0.0.1:1/?token={SECRET}")
    assert found == "asdk_x_y"


def test_a_postgres_url_in_errors_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_DATABASE_URL", f"postgresql://ops:{SECRET}@127.0.0.1:1/db")
    result = cli("runs", "list", "--local", "-o", "json")  # sqlite backend, postgres URL
    assert result.exit_code != 0
    _no_secret(result)
    assert "ops:***@" in result.stderr
