"""The checks :func:`agent_sdk.config.load_settings` makes beyond parsing values.

Each returns warnings (plain sentences) that end up in ``Settings.warnings``; the process host
(every CLI command, ``up``, ``serve``, ``worker``) prints them once on stderr at start-up.

* :func:`env_warnings`: ``AGENT_SDK_*`` variables that nothing reads, either because they are
  typos (with a "did you mean ...?") or because they belong to a feature not built yet; silently
  ignoring those lets an operator believe a protection is on.
* :func:`permission_warnings`: the data directory and the secret files readable by others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sdk.config import Settings

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


def permission_warnings(settings: Settings) -> list[str]:
    """The data directory, the database and queue files, and the secret files, when a group or
    other users can read them (only those that exist: new ones are created private)."""
    from agent_sdk.private_files import loose_mode_warning

    data = Path(settings.data_dir)
    checks: list[tuple[Path, str]] = [(data, "the data directory")]
    if settings.storage_backend == "sqlite" and settings.database_url.startswith("sqlite:///"):
        db = settings.sqlite_path
        checks += [(Path(f"{db}{s}"), "the database file") for s in ("", "-wal", "-shm")]
    if settings.queue_backend == "sqlite":
        q = settings.queue_sqlite_path
        checks += [(Path(f"{q}{s}"), "the queue database") for s in ("", "-wal", "-shm")]
    checks += [
        (settings.admin_token_path, "the admin token"),
        (settings.pepper_path, "the API-key pepper"),
        (settings.audit_signing_key_path, "the audit signing key"),
    ]
    if settings.audit_log_path:
        checks.append((Path(settings.audit_log_path), "the audit log"))
    if settings.encryption_master_key_file:
        path = Path(settings.encryption_master_key_file).expanduser()
        checks.append((path, "the file of AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE"))
    out = []
    for path, what in checks:
        warning = loose_mode_warning(path, what)
        if warning is not None:
            out.append(warning)
    return out


__all__ = [
    "NOT_YET_SUPPORTED",
    "env_warnings",
    "permission_warnings",
]
