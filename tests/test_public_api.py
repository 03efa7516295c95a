"""The public Python surface is a promise: this test pins it, so a rename is a deliberate act."""

from __future__ import annotations

import subprocess
import sys

import agent_sdk

EXPECTED = {
    "Agent", "AgentRegistry", "AgentSDKError", "AuthenticationError", "BackendUnavailable",
    "ConfigError", "Conflict", "Event", "EventType", "HttpBackend", "InvalidInput",
    "LocalBackend", "ModelError", "ModelProvider", "NotFound", "PermissionDenied",
    "QuotaExceeded", "Run", "RunResult", "RunStatus", "Runtime", "ScriptedModel", "Session",
    "Settings", "Tool", "ToolContext", "ToolError", "Usage", "__version__", "load_settings",
    "open_store", "tool",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(agent_sdk.__all__) == EXPECTED


def test_every_export_resolves() -> None:
    for name in agent_sdk.__all__:
        assert getattr(agent_sdk, name) is not None, name


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, agent_sdk\n"
        "heavy = [m for m in ('pydantic', 'httpx', 'fastapi', 'sqlite3', 'yaml') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
