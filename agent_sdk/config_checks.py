"""The checks :func:`agent_sdk.config.load_settings` makes beyond parsing values.

Each returns warnings (plain sentences) that end up in ``Settings.warnings``; the process host
(every CLI command, ``up``, ``serve``, ``worker``) prints them once on stderr at start-up. A
check fails instead (ConfigError) only where going on would leak a secret.

* :func:`env_warnings`: ``AGENT_SDK_*`` variables that nothing reads, either because they are
  typos (with a "did you mean ...?") or because they belong to a feature not built yet; silently
  ignoring those lets an operator believe a protection is on.
* :func:`check_config_file`: secrets (``api_key``, ``jwt_secret``, ...) written in a config file.
* :func:`read_secret_files`: the ``*_FILE`` variables that hand a secret over in a file.
* :func:`permission_warnings`: the data directory and the secret files readable by others.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import ConfigError
from agent_sdk.settings import flat_value

if TYPE_CHECKING:
    from agent_sdk.settings import Settings

PREFIX = "AGENT_SDK_"

# Settings the spec (production-hardening-guide.md) names for features this version does not have
# yet: variable -> (the feature, the issue that builds it). Setting one has no effect, so start-up
# says so. When a feature lands, its settings join config._PARSERS and leave this table
# (tests/test_config_warnings.py fails while a name is in both).
NOT_YET_SUPPORTED: dict[str, tuple[str, int]] = {
    "AGENT_SDK_SCHEDULER_DB_PATH": ("durable schedules", 15),
    "AGENT_SDK_TOOL_SANDBOX": ("tool sandboxes", 17),
    "AGENT_SDK_TOOL_SANDBOX_TIMEOUT": ("tool sandboxes", 17),
    "AGENT_SDK_RELIABILITY_ENABLED": ("tool retries and circuit breakers", 17),
    "AGENT_SDK_TOOL_RETRY_MAX": ("tool retries and circuit breakers", 17),
    "AGENT_SDK_TOOL_CIRCUIT_FAILURE_THRESHOLD": ("tool retries and circuit breakers", 17),
    "AGENT_SDK_REPLAY_MODE": ("replay mode", 17),
    "AGENT_SDK_REPLAY_PATH": ("replay mode", 17),
    "AGENT_SDK_TOOL_MANIFEST_SECRET": ("signed tool packs", 18),
    "AGENT_SDK_IDP_PROVIDER": ("OIDC and SAML sign-in", 20),
    "AGENT_SDK_SCIM_TOKEN": ("SCIM provisioning", 20),
    "AGENT_SDK_PROMETHEUS_ENABLED": ("Prometheus metrics", 21),
    "AGENT_SDK_OTEL_EXPORTER": ("OpenTelemetry traces", 21),
    "AGENT_SDK_OTEL_OTLP_ENDPOINT": ("OpenTelemetry traces", 21),
    "AGENT_SDK_LOG_FORMAT": ("structured logs", 21),
}
# Variables read outside Settings (the config file's own path), and the prefixes of variables
# that belong to the test suite and the benchmarks, never to the product.
OTHER_KNOWN = frozenset({"AGENT_SDK_CONFIG"})
TOOL_PREFIXES = ("AGENT_SDK_TEST_", "AGENT_SDK_BENCH_")
# More warnings than this about variables is noise: the rest are counted, not listed.
MAX_ENV_WARNINGS = 20

# Secrets a config file should not hold -> where they belong instead.
SECRET_KEYS: dict[str, str] = {
    "api_key": "`agent-sdk auth login` (the OS keyring, or a 0600 credentials file) or "
    "AGENT_SDK_API_KEY_FILE",
    "jwt_secret": "AGENT_SDK_JWT_SECRET_FILE",
    "encryption_master_key": "AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE",
    "api_key_pepper": "AGENT_SDK_API_KEY_PEPPER_FILE",
}
# Secrets read from a file at settings load: the setting -> the setting naming its file. (The
# encryption master key file is read where the key is used: agent_sdk.governance.envelope.)
SECRET_FILES: dict[str, str] = {
    "api_key": "api_key_file",
    "jwt_secret": "jwt_secret_file",
    "api_key_pepper": "api_key_pepper_file",
}

MAX_SECRET_FILE_BYTES = 65_536

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")


def _shown(name: str) -> str:
    """A variable name as a warning may print it: control characters or a huge name from a
    hostile environment would otherwise reach the terminal as they are."""
    return name if _PLAIN_NAME.fullmatch(name) else ascii(name[:100])


def env_warnings(env: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One warning per ``AGENT_SDK_*`` variable that no setting reads. Values are never shown:
    a misspelt secret is still a secret."""
    known = set(known) | OTHER_KNOWN
    out: list[str] = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(PREFIX) or name in known or upper.startswith(TOOL_PREFIXES):
            continue
        if name in NOT_YET_SUPPORTED:
            feature, issue = NOT_YET_SUPPORTED[name]
            out.append(
                f"{name} has no effect yet: it belongs to {feature} (issue {issue}), "
                "which this version does not have"
            )
            continue
        import difflib

        close = difflib.get_close_matches(upper, sorted(known | set(NOT_YET_SUPPORTED)), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        out.append(f"unknown variable {_shown(name)} is ignored{hint}")
    if len(out) > MAX_ENV_WARNINGS:
        more = len(out) - MAX_ENV_WARNINGS
        out = [*out[:MAX_ENV_WARNINGS], f"... and {more} more AGENT_SDK_* variables are ignored"]
    return out


def _secrets_in(table: Mapping[str, Any]) -> list[str]:
    found = [k for k in SECRET_KEYS if table.get(k) not in (None, "")]
    for profile in (table.get("profiles") or {}).values():
        if isinstance(profile, Mapping):
            found += [k for k in SECRET_KEYS if profile.get(k) not in (None, "") and k not in found]
    return found


def check_config_file(path: Path, table: Mapping[str, Any]) -> list[str]:
    """Secrets written in a config file: ConfigError when other users can read the file (the
    secret is already exposed; going on would make it look fine), else a warning."""
    found = _secrets_in(table)
    if not found:
        return []
    where = "; ".join(f"{k} belongs in {SECRET_KEYS[k]}" for k in found)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0
    if mode & 0o044:
        raise ConfigError(
            f"{path} holds {', '.join(found)} and other users can read it (mode {mode:04o})",
            hint=f"move the secret out of the file ({where}), or at least chmod 600 {path}",
        )
    return [f"{path} holds {', '.join(found)} in plain text; {where}"]


def read_secret_files(values: dict[str, Any]) -> None:
    """Replace each ``*_FILE`` setting's path by the secret it holds (one trailing newline
    stripped), in ``values``. Errors name the variable and the file, never the content."""
    for secret, file_setting in SECRET_FILES.items():
        path = values.get(file_setting)
        if not path:
            continue
        var, file_var = PREFIX + secret.upper(), PREFIX + file_setting.upper()
        if values.get(secret):
            raise ConfigError(f"both {var} and {file_var} are set", hint="set only one of them")
        try:
            with Path(path).expanduser().open("rb") as fh:
                data = fh.read(MAX_SECRET_FILE_BYTES + 1)  # /dev/zero must not fill memory
            if len(data) > MAX_SECRET_FILE_BYTES:
                raise ConfigError(
                    f"{file_var}={path} is larger than {MAX_SECRET_FILE_BYTES} bytes",
                    hint=f"point {file_var} at a file holding only the {secret}",
                )
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise ConfigError(
                f"cannot read {file_var}={path}: {why}",
                hint="check the path and that this user may read the file",
            ) from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise ConfigError(f"{file_var}={path} is empty", hint=f"put the {secret} in it")
        values[secret] = text


def permission_warnings(settings: Settings) -> list[str]:
    """The data directory, the database and queue files, and the secret files, when a group or
    other users can read them (only those that exist: new ones are created private)."""
    from agent_sdk.private_files import loose_mode_warning

    data = Path(settings.data_dir)
    checks: list[tuple[Path, str]] = [(data, "the data directory")]
    store = settings.store
    if store.backend == "sqlite" and store.database_url.startswith("sqlite:///"):
        db = store.sqlite_path
        checks += [(Path(f"{db}{s}"), "the database file") for s in ("", "-wal", "-shm")]
    if settings.queue.backend == "sqlite":
        q = settings.queue_sqlite_path
        checks += [(Path(f"{q}{s}"), "the queue database") for s in ("", "-wal", "-shm")]
    checks += [
        (settings.admin_token_path, "the admin token"),
        (settings.pepper_path, "the API-key pepper"),
        (settings.audit_signing_key_path, "the audit signing key"),
    ]
    if settings.audit.log_path:
        checks.append((Path(settings.audit.log_path), "the audit log"))
    for name in (*SECRET_FILES.values(), "encryption_master_key_file"):
        path = flat_value(settings, name)
        if path:
            checks.append((Path(path).expanduser(), f"the file of {PREFIX}{name.upper()}"))
    out = []
    for path, what in checks:
        warning = loose_mode_warning(path, what)
        if warning is not None:
            out.append(warning)
    return out


__all__ = [
    "NOT_YET_SUPPORTED",
    "SECRET_FILES",
    "SECRET_KEYS",
    "check_config_file",
    "env_warnings",
    "permission_warnings",
    "read_secret_files",
]
