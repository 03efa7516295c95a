"""Settings: precedence, profiles, and clear errors that name the bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sdk.config import _PARSERS, env_name, load_settings
from agent_sdk.errors import ConfigError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [env_name(n) for n in _PARSERS if f"`{env_name(n)}`" not in text]
    assert not missing, f"document these in docs/configuration.md: {missing}"


def test_precedence_flag_env_project_user_default(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text("port = 1\n[profiles.default]\nport = 2\nmax_steps = 7\n")
    env = {"HOME": str(tmp_path)}
    assert load_settings(env=env, cwd=tmp_path, user_config=user).server.port == 2
    (tmp_path / "agent-sdk.toml").write_text("port = 3\n")
    assert load_settings(env=env, cwd=tmp_path, user_config=user).server.port == 3
    env["AGENT_SDK_PORT"] = "4"
    assert load_settings(env=env, cwd=tmp_path, user_config=user).server.port == 4
    s = load_settings(flags={"port": 5}, env=env, cwd=tmp_path, user_config=user)
    assert s.server.port == 5 and s.engine.max_steps == 7


def test_profiles(tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('[profiles.prod]\nbackend = "http"\nserver_url = "https://x.example"\n')
    env = {"HOME": str(tmp_path), "AGENT_SDK_PROFILE": "prod"}
    s = load_settings(env=env, cwd=tmp_path, user_config=user)
    assert (s.client.backend, s.client.server_url, s.profile) == (
        "http",
        "https://x.example",
        "prod",
    )
    with pytest.raises(ConfigError, match="profile 'nope' is not defined"):
        load_settings(flags={"profile": "nope"}, env=env, cwd=tmp_path, user_config=user)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AGENT_SDK_STREAM_QUEUE_SIZE", "abc"),
        ("AGENT_SDK_STREAM_QUEUE_SIZE", "0"),
        ("AGENT_SDK_EXECUTION_MODE", "sometimes"),
        ("AGENT_SDK_STORAGE_BACKEND", "mongodb"),
        ("AGENT_SDK_PORT", "70000"),
        ("AGENT_SDK_ALLOW_MODEL_REQUESTS", "maybe"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_settings(env={"HOME": str(tmp_path), var: value}, cwd=tmp_path)


def test_unknown_file_key_and_broken_file(tmp_path: Path) -> None:
    (tmp_path / "agent-sdk.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_settings(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    (tmp_path / "agent-sdk.toml").write_text("port = \n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(env={"HOME": str(tmp_path)}, cwd=tmp_path)


def test_postgres_needs_a_postgres_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AGENT_SDK_DATABASE_URL"):
        load_settings(
            env={"HOME": str(tmp_path), "AGENT_SDK_STORAGE_BACKEND": "postgres"}, cwd=tmp_path
        )


def test_defaults_follow_xdg(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    s = load_settings(env=env, cwd=tmp_path)
    assert s.data_dir == str(tmp_path / "data" / "agent-sdk")
    assert s.store.sqlite_path == tmp_path / "data" / "agent-sdk" / "agent-sdk.db"
    assert s.engine.fs_allowlist == (str(tmp_path.resolve()),)
    assert "s3cret" not in repr(load_settings(env={**env, "AGENT_SDK_API_KEY": "s3cret"}))
