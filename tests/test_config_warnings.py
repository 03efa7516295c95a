"""Start-up warnings: AGENT_SDK_* variables nothing reads (typos, features not built yet), and
secrets in config files, which are refused when other users can read the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agent_sdk import config
from agent_sdk.cli.main import app
from agent_sdk.config import _PARSERS, env_name, load_settings
from agent_sdk.config_checks import NOT_YET_SUPPORTED, env_warnings
from agent_sdk.errors import ConfigError
from agent_sdk.settings import flat_value

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
    """A setting a later change adds (AGENT_SDK_FUTURE_SWITCH, say) is known at once."""
    env = {"AGENT_SDK_FUTURE_SWITCH": "true"}
    assert env_warnings(env, (env_name(n) for n in _PARSERS))
    monkeypatch.setitem(config._PARSERS, "future_switch", config._bool)
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


# -- secrets in config files ----------------------------------------------------------------------


def _user_file(text: str, mode: int) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "agent-sdk" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("api_key", "agent-sdk auth login"),
        ("jwt_secret", "AGENT_SDK_JWT_SECRET_FILE"),
        ("encryption_master_key", "AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE"),
        ("api_key_pepper", "AGENT_SDK_API_KEY_PEPPER_FILE"),
    ],
)
def test_a_readable_config_file_with_a_secret_is_refused(mode: int, key: str, where: str) -> None:
    path = _user_file(f'[profiles.default]\n{key} = "{SECRET}"\n', mode)
    result = cli("runs", "list", "--local", "-o", "json")
    assert result.exit_code == 2  # a configuration error, like any bad setting
    error = json.loads(result.stderr)["error"]
    assert str(path) in error["message"] and key in error["message"]
    assert where in error["hint"] and f"chmod 600 {path}" in error["hint"]
    assert SECRET not in result.stdout + result.stderr


def test_a_private_config_file_with_a_secret_works_with_a_warning() -> None:
    path = _user_file(f'api_key = "{SECRET}"\n[profiles.prod]\njwt_secret = "{SECRET}"\n', 0o600)
    result = cli("auth", "token", "--server", "http://127.0.0.1:1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == SECRET  # the one place a secret is meant to be printed
    warned = lines(result, f"warning: {path} holds api_key, jwt_secret in plain text")
    assert len(warned) == 1 and "AGENT_SDK_API_KEY_FILE" in warned[0]
    assert SECRET not in result.stderr


def test_a_project_file_with_a_secret_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "agent-sdk.toml"
    project.write_text(f'jwt_secret = "{SECRET}"\n')
    project.chmod(0o644)
    with pytest.raises(ConfigError, match="other users can read it") as info:
        load_settings(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert SECRET not in str(info.value) + str(info.value.hint)


# -- secrets handed over in files (*_FILE) --------------------------------------------------------


def _secret_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("setting", ["api_key", "jwt_secret", "api_key_pepper"])
def test_a_file_variable_gives_the_secret(tmp_path: Path, setting: str) -> None:
    path = _secret_file(tmp_path, SECRET + "\n")
    env = {"HOME": str(tmp_path), f"AGENT_SDK_{setting.upper()}_FILE": str(path)}
    settings = load_settings(env=env, cwd=tmp_path)
    assert flat_value(settings, setting) == SECRET
    assert settings.warnings == ()
    assert SECRET not in repr(settings)


def test_file_variables_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AGENT_SDK_JWT_SECRET_FILE": str(tmp_path / "missing")}
    with pytest.raises(ConfigError, match="cannot read AGENT_SDK_JWT_SECRET_FILE"):
        load_settings(env=env, cwd=tmp_path)
    env["AGENT_SDK_JWT_SECRET_FILE"] = str(_secret_file(tmp_path, "\n"))
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(env=env, cwd=tmp_path)
    env["AGENT_SDK_JWT_SECRET_FILE"] = str(_secret_file(tmp_path, SECRET))
    env["AGENT_SDK_JWT_SECRET"] = "other"
    with pytest.raises(ConfigError, match="both AGENT_SDK_JWT_SECRET and"):
        load_settings(env=env, cwd=tmp_path)
    env["AGENT_SDK_JWT_SECRET_FILE"] = "/dev/zero"
    del env["AGENT_SDK_JWT_SECRET"]
    with pytest.raises(ConfigError, match="larger than 65536 bytes"):
        load_settings(env=env, cwd=tmp_path)
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    env = {"HOME": str(tmp_path), "AGENT_SDK_API_KEY_FILE": str(tmp_path / "bin")}
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(env=env, cwd=tmp_path)


def test_a_secret_file_others_can_read_warns(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, SECRET, mode=0o644)
    env = {"HOME": str(tmp_path), "AGENT_SDK_JWT_SECRET_FILE": str(path)}
    (found,) = load_settings(env=env, cwd=tmp_path).warnings
    assert str(path) in found and f"chmod 600 {path}" in found and SECRET not in found


def test_the_cli_uses_the_api_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _secret_file(tmp_path, SECRET + "\n")
    monkeypatch.setenv("AGENT_SDK_API_KEY_FILE", str(path))
    result = cli("auth", "token", "--server", "http://127.0.0.1:1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == SECRET + "\n"
    status = cli("auth", "status", "--server", "http://127.0.0.1:1", "-o", "json")
    info = json.loads(status.stdout)
    assert (info["source"], info["where"]) == ("file", str(path))
    assert SECRET not in status.stdout + status.stderr
