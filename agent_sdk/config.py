"""Settings, built once at the edge.

Precedence, highest first: explicit flags > ``AGENT_SDK_*`` environment > project file
(``./agent-sdk.toml``) > user file (``~/.config/agent-sdk/config.toml``, the profile selected by
``--profile`` / ``AGENT_SDK_PROFILE``) > defaults. Library code receives a :class:`Settings` and
never reads ``os.environ`` itself.

Settings are named by their public flat names (the keys of ``_PARSERS`` below): a config file
holds them as keys (``server_url = "..."``), the environment as ``AGENT_SDK_<NAME>``, and
:data:`agent_sdk.settings.FLAT` says in which group of :class:`Settings` each one lands
(``kafka_topic`` -> ``settings.queue.kafka.topic``). The user file keeps one table per profile::

    [profiles.default]
    backend = "local"

    [profiles.prod]
    backend = "http"
    server_url = "https://agents.example.com"
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import agent_sdk.config_checks as checks
from agent_sdk.errors import ConfigError
from agent_sdk.settings import AwsEnvironment as AwsEnvironment  # shape: agent_sdk.settings
from agent_sdk.settings import EngineSettings
from agent_sdk.settings import Settings as Settings

ENV_PREFIX = "AGENT_SDK_"
APP_NAME = "agent-sdk"


def _user_config_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / APP_NAME


def _user_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local" / "share"
    )
    return Path(base) / APP_NAME


# -- value parsers: each takes the raw value (str from env, or a TOML value) -------------------


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in {"1", "true", "yes", "on"}:
        return True
    if s in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _int(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        n = int(str(v).strip())
        if n < lo or (hi is not None and n > hi):
            raise ValueError(f"expected an integer from {lo}" + (f" to {hi}" if hi else " up"))
        return n

    return parse


def _float(lo: float) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        n = float(str(v).strip())
        if n < lo:
            raise ValueError(f"expected a number >= {lo}")
        return n

    return parse


def _opt_bool(v: Any) -> bool | None:
    """A switch whose absence means something of its own (empty: not set)."""
    if isinstance(v, str) and not v.strip():
        return None
    return _bool(v)


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        s = str(v).strip().lower()
        if s not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return s

    return parse


def _list(v: Any) -> tuple[str, ...]:
    if isinstance(v, list | tuple):
        return tuple(str(x).strip() for x in v if str(x).strip())
    return tuple(x.strip() for x in str(v).split(",") if x.strip())


def _str(v: Any) -> str:
    return str(v)


def _opt_str(v: Any) -> str | None:
    s = str(v).strip()
    return s or None


# A data region: a short lowercase identifier such as eu, us or eu-west-1 (agent_sdk.core.residency
# validates an org's region with the same pattern).
REGION = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
REGION_MAX = 32


def _opt_region(v: Any) -> str | None:
    s = str(v).strip()
    if s and (len(s) > REGION_MAX or not REGION.fullmatch(s)):
        raise ValueError("expected a lowercase region id such as eu, us or eu-west-1")
    return s or None


def aws_environment(env: Mapping[str, str] | None = None) -> AwsEnvironment:
    """The AWS variables of ``env`` (default: this process's environment); empty ones unset."""
    env = os.environ if env is None else env
    return AwsEnvironment(
        endpoint_url_sqs=env.get("AWS_ENDPOINT_URL_SQS") or None,
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        region=env.get("AWS_REGION") or None,
        default_region=env.get("AWS_DEFAULT_REGION") or None,
    )


# setting name -> parser. Names map to env vars as AGENT_SDK_<NAME upper>.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "backend": _choice("auto", "local", "http"),
    "server_url": _str,
    "api_key": _opt_str,
    "api_key_file": _opt_str,
    "org_id": _opt_str,
    "profile": _str,
    "data_dir": _str,
    "storage_backend": _choice("sqlite", "postgres"),
    "database_url": _str,
    "sqlite_busy_timeout": _float(0),
    "execution_mode": _choice("inline", "queue"),
    "worker_count": _int(1, 1024),
    "worker_restart_limit": _int(0, 10_000),
    "worker_restart_window": _float(1),
    "max_concurrent_runs": _int(1, 100_000),
    "queue_backend": _choice("sqlite", "memory", "redis", "sqs", "kafka"),
    "queue_db_path": _str,
    "sqs_queue_url": _opt_str,
    "sqs_dead_queue_url": _opt_str,
    "kafka_bootstrap_servers": _opt_str,
    "kafka_topic": _str,
    "max_steps": _int(1),
    "max_tokens": _int(1),
    "agents": _list,
    "agents_file": _opt_str,
    "allow_model_requests": _bool,
    "retry_max": _int(0, 100),
    "retry_base_delay": _float(0),
    "retry_max_delay": _float(0),
    "run_recovery_enabled": _bool,
    "worker_lease": _float(1),
    "event_retention_max_events": lambda v: None if str(v).strip() == "" else _int(1)(v),
    "retention_sweep_interval": _float(0),
    "retention_batch_size": _int(1, 10_000),
    "data_region": _opt_region,
    "stream_queue_size": _int(1),
    "stream_max_events": _int(1),
    "fs_allowlist": _list,
    "http_allowlist": _list,
    "http_timeout": _float(0.001),
    "host": _str,
    "port": _int(0, 65535),
    "max_body_bytes": _int(1),
    "max_header_bytes": _int(1024, 16 * 1024 * 1024),
    "max_header_count": _int(10, 10_000),
    "docs_enabled": _opt_bool,
    "idempotency_ttl": _float(1),
    "api_key_pepper": _opt_str,
    "api_key_pepper_file": _opt_str,
    "api_key_role": _choice("admin", "operator", "viewer"),
    "api_key_scopes": _list,
    "jwt_enabled": _bool,
    "jwt_secret": _opt_str,
    "jwt_secret_file": _opt_str,
    "jwt_issuer": _str,
    "jwt_audience": _str,
    "jwt_leeway": _float(0),
    "jwt_max_lifetime": _float(1),
    "redis_url": _opt_str,
    "trusted_proxies": _list,
    "audit_log_path": _opt_str,
    "audit_log_stdout": _bool,
    "audit_hash_chain": _bool,
    "audit_signing_key": _opt_str,
    "audit_checkpoint_every": _int(1),
    "audit_checkpoint_seconds": _float(0),
    "pii_redaction_enabled": _bool,
    "encryption_enabled": _bool,
    "encryption_master_key": _opt_str,  # checked where it is used, so no error echoes it
    "encryption_master_key_file": _opt_str,
    "encryption_key_cache_ttl": _float(0),
    "debug": _bool,
}
# Environment names that differ from AGENT_SDK_<FIELD>. Spec names are public: keep them.
_ENV_ALIASES: dict[str, str] = {
    "org_id": "AGENT_SDK_ORG",
    "agents_file": "AGENT_SDK_AGENTS_PATH",
    # The hardening guide names these two without the prefix.
    "api_key_role": "API_KEY_ROLE",
    "api_key_scopes": "API_KEY_SCOPES",
}


def env_name(setting: str) -> str:
    return _ENV_ALIASES.get(setting, ENV_PREFIX + setting.upper())


def _parse(name: str, raw: Any, source: str) -> Any:
    try:
        return _PARSERS[name](raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: invalid value {raw!r}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            # Imported only when there is a file to parse: most calls have none, and every
            # call pays for what the CLI imports.
            import tomllib

            try:
                return tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _from_table(table: Mapping[str, Any], source: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in table.items():
        if key == "profiles":
            continue
        if key not in _PARSERS:
            raise ConfigError(
                f"{source}: unknown key {key!r}", hint="valid keys: " + ", ".join(sorted(_PARSERS))
            )
        out[key] = _parse(key, raw, f"{source}: {key}")
    return out


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user_config: Path | None = None,
) -> Settings:
    """Build the one Settings object. Raises :class:`ConfigError` naming the bad variable."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    cwd = cwd or Path.cwd()
    values: dict[str, Any] = {}

    profile = flags.get("profile") or env.get("AGENT_SDK_PROFILE") or "default"
    user_path = user_config or Path(
        env.get("AGENT_SDK_CONFIG") or _user_config_dir(env) / "config.toml"
    )
    user = _read_toml(user_path)
    profiles = user.get("profiles", {})
    if profile not in profiles and profile != "default":
        raise ConfigError(
            f"profile {profile!r} is not defined in {user_path}",
            hint=f"add a [profiles.{profile}] table, or pick one of: "
            + (", ".join(sorted(profiles)) or "(none defined)"),
        )
    values.update(_from_table(user, user_path))
    values.update(_from_table(profiles.get(profile, {}), user_path))
    project_path = cwd / "agent-sdk.toml"
    project = _read_toml(project_path)
    values.update(_from_table(project, project_path))
    warnings = checks.check_config_file(user_path, user) if user else []
    warnings += checks.check_config_file(project_path, project) if project else []
    warnings += checks.env_warnings(env, (env_name(n) for n in _PARSERS))

    for name in _PARSERS:
        key = env_name(name)
        if key in env:
            values[name] = _parse(name, env[key], key)
    for name, raw in flags.items():
        if name not in _PARSERS:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _parse(name, raw, "--" + name.replace("_", "-"))
    values["profile"] = profile

    if not values.get("data_dir"):
        values["data_dir"] = str(_user_data_dir(env))
    if not values.get("database_url"):
        values["database_url"] = "sqlite:///" + str(Path(values["data_dir"]) / "agent-sdk.db")
    if values.get("storage_backend") == "postgres" and values["database_url"].startswith("sqlite"):
        raise ConfigError(
            "AGENT_SDK_STORAGE_BACKEND=postgres needs AGENT_SDK_DATABASE_URL=postgresql://..."
        )
    values["fs_allowlist"] = tuple(
        str((cwd / p).resolve()) for p in values.get("fs_allowlist", EngineSettings.fs_allowlist)
    )
    checks.read_secret_files(values)
    settings = Settings().replace(**values)
    sqs = dataclasses.replace(settings.queue.sqs, aws=aws_environment(env))
    settings = settings.replace(queue=dataclasses.replace(settings.queue, sqs=sqs))
    warnings += checks.permission_warnings(settings)
    return settings.replace(warnings=tuple(warnings))


# -- the environment outside Settings ------------------------------------------------------------
# A few readers need one variable before Settings exist, or a fact Settings do not keep; they ask
# here, so this module stays the only one that reads the environment.


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/agent-sdk`` (default ``~/.config/agent-sdk``): the CLI's own files."""
    return _user_config_dir(os.environ)


def api_key_in_env() -> bool:
    """Whether ``AGENT_SDK_API_KEY`` is set (and not empty): the key then comes from there, and
    wins over every stored one."""
    return bool(os.environ.get("AGENT_SDK_API_KEY"))


def debug_in_env() -> bool:
    """``AGENT_SDK_DEBUG`` as the CLI reads it for the traceback of an error, which may lie in
    the settings themselves: on for 1/true/yes/on, off for anything else (never an error)."""
    value = os.environ.get("AGENT_SDK_DEBUG") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


def color_allowed() -> bool:
    """Colour unless ``NO_COLOR`` is set (to anything, per no-color.org) or ``TERM=dumb``."""
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def proxy_in_env() -> bool:
    """Whether a ``<scheme>_proxy`` variable (any case; ``no_proxy`` aside) names a proxy, as
    urllib and httpx read them: the CLI's HTTP calls then go through httpx, which honours it."""
    return any(
        value and name.lower().endswith("_proxy") and name.lower() != "no_proxy"
        for name, value in os.environ.items()
    )


def tls_trust_in_env() -> tuple[str | None, str | None]:
    """``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` (empty ones unset): the CA certificates a TLS
    client trusts instead of its bundled ones."""
    return os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
