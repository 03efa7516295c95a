"""Start-up warnings: AGENT_SDK_* variables nothing reads (typos, features not built yet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agent_sdk import config
from agent_sdk.cli.main import app
from agent_sdk.config import _PARSERS, env_name, load_settings
from agent_sdk.config_checks import NOT_YET_SUPPORTED, env_warnings

runner = CliRunner()
SECRET = "s3cret-value-0123456789abcdef0123456789"


def cli(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def warnings_of(env: dict[str, str], tmp_path: Path) -> tuple[str, ...]:
    return load_settings(env={"HOME": str(tmp_path), **env}, cwd=tmp_path).warnings


def lines(result: Result, needle: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if needle in line]


# -- unknown and not-yet-supported variables ---------------------------------------------------


def test_spec_settings_of_missing_features_warn_naming_the_issue(tmp_path: Path) -> None:
    env = {name: SECRET for name in NOT_YET_SUPPORTED}
    found = warnings_of(env, tmp_path)
    for name, (_feature, issue) in NOT_YET_SUPPORTED.items():
        mine = [w for w in found if w.startswith(name + " ")]
        assert len(mine) == 1 and f"issue {issue}" in mine[0] and "no effect" in mine[0], found
    assert all(SECRET not in w for w in found)  # a value may be a secret: never shown


def test_the_spec_names_every_missing_feature_setting() -> None:
    """Every AGENT_SDK_* name of the spec is either a setting or in NOT_YET_SUPPORTED, and no
    name is both: when a feature lands its names move from one table to the other."""
    import re

    spec = Path("/work/shared/spec/production-hardening-guide.md")
    settings = {env_name(n) for n in _PARSERS}
    assert not settings & set(NOT_YET_SUPPORTED)
    if spec.exists():
        named = set(re.findall(r"AGENT_SDK_[A-Z0-9_]+", spec.read_text()))
        assert named <= settings | set(NOT_YET_SUPPORTED), named - settings


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("AGENT_SDK_JWT_SECERT", "AGENT_SDK_JWT_SECRET"),
        ("AGENT_SDK_PII_REDACTION_ENABLE", "AGENT_SDK_PII_REDACTION_ENABLED"),
        ("AGENT_SDK_ORG_ID", "AGENT_SDK_ORG"),
        ("agent_sdk_port", "AGENT_SDK_PORT"),  # the right name in the wrong case
        ("AGENT_SDK_PROMETHEUS_ENABLE", "AGENT_SDK_PROMETHEUS_ENABLED"),
    ],
)
def test_a_typo_is_named_with_a_suggestion(tmp_path: Path, name: str, suggestion: str) -> None:
    found = warnings_of({name: SECRET}, tmp_path)
    assert found == (f"unknown variable {name} is ignored; did you mean {suggestion}?",)


def test_known_test_and_bench_variables_do_not_warn(tmp_path: Path) -> None:
    env = {
        "AGENT_SDK_TEST_REDIS_URL": "redis://127.0.0.1:6379/13",
        "AGENT_SDK_TEST_REQUIRE_SERVICES": "1",
        "AGENT_SDK_BENCH_POSTGRES_URL": "postgresql://x@127.0.0.1/y",
        "AGENT_SDK_CONFIG": str(tmp_path / "none.toml"),
        "AGENT_SDK_PORT": "9000",
        "AGENT_SDK_ORG": "acme",
        "AGENT_SDK_AGENTS_PATH": "agents.yaml",
        "API_KEY_ROLE": "viewer",
        "OTHER_VARIABLE": "x",
    }
    assert warnings_of(env, tmp_path) == ()


def test_the_known_names_come_from_the_parser_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting another change adds (AGENT_SDK_DOCS_ENABLED, say) is known at once."""
    env = {"AGENT_SDK_DOCS_ENABLED": "true"}
    assert env_warnings(env, (env_name(n) for n in _PARSERS))
    monkeypatch.setitem(config._PARSERS, "docs_enabled", config._bool)
    assert env_warnings(env, (env_name(n) for n in _PARSERS)) == []
    every = {env_name(n): "x" for n in _PARSERS}
    assert env_warnings(every, (env_name(n) for n in _PARSERS)) == []


def test_hostile_variable_names_are_escaped_and_counted(tmp_path: Path) -> None:
    env = {"AGENT_SDK_\x1b[2J\x07": "x", "AGENT_SDK_" + "A" * 5000: "x"}
    found = warnings_of(env, tmp_path)
    assert len(found) == 2
    assert all("\x1b" not in w and "\x07" not in w and len(w) < 300 for w in found), found
    many = {f"AGENT_SDK_NOPE_{i}": "x" for i in range(500)}
    found = warnings_of(many, tmp_path)
    assert len(found) == 21 and found[-1] == "... and 480 more AGENT_SDK_* variables are ignored"


@pytest.mark.parametrize("output", ["json", "table"])
def test_the_cli_warns_once_on_stderr_never_in_json(
    output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SDK_TOOL_SANDBOX", "docker")
    monkeypatch.setenv("AGENT_SDK_JWT_SECERT", SECRET)
    monkeypatch.setenv("AGENT_SDK_TEST_SOMETHING", "1")
    result = cli("runs", "list", "--local", "-o", output)
    assert result.exit_code == 0, result.stderr
    if output == "json":
        assert json.loads(result.stdout) == []
    assert "warning" not in result.stdout
    assert len(lines(result, "AGENT_SDK_TOOL_SANDBOX has no effect yet")) == 1
    assert len(lines(result, "did you mean AGENT_SDK_JWT_SECRET?")) == 1
    assert "AGENT_SDK_TEST_SOMETHING" not in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_serve_and_worker_warn_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SDK_PROMETHEUS_ENABLED", "true")
    # serve refuses an unmigrated database: after start-up, before listening
    serve = cli("serve", "--port", "0")
    assert serve.exit_code == 1 and "pending migration" in serve.stderr
    assert len(lines(serve, "AGENT_SDK_PROMETHEUS_ENABLED has no effect yet")) == 1
    monkeypatch.setenv("AGENT_SDK_EXECUTION_MODE", "queue")
    worker = cli("worker", "--count", "1", "--agents", "no_such_module_for_this_test")
    assert worker.exit_code != 0
    assert len(lines(worker, "AGENT_SDK_PROMETHEUS_ENABLED has no effect yet")) == 1
