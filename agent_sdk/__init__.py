"""agent-sdk: a CLI-first admin tool and local runtime for AI-agent runs.

The public Python surface is re-exported here. Names resolve lazily (PEP 562) so that importing
the package, which every CLI call does, costs nothing beyond this module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_sdk.version import __version__

_EXPORTS: dict[str, str] = {
    "Agent": "agent_sdk.engine.agent",
    "AgentRegistry": "agent_sdk.engine.agent",
    "RunResult": "agent_sdk.engine.agent",
    "tool": "agent_sdk.engine.tools",
    "Tool": "agent_sdk.engine.tools",
    "ToolContext": "agent_sdk.engine.tools",
    "ScriptedModel": "agent_sdk.engine.models.scripted",
    "ModelProvider": "agent_sdk.engine.models.base",
    "Settings": "agent_sdk.config",
    "load_settings": "agent_sdk.config",
    "Runtime": "agent_sdk.core.runtime",
    "open_store": "agent_sdk.store",
    "LocalBackend": "agent_sdk.backend.local",
    "HttpBackend": "agent_sdk.backend.http",
    "Event": "agent_sdk.records",
    "EventType": "agent_sdk.records",
    "Run": "agent_sdk.records",
    "RunStatus": "agent_sdk.records",
    "Session": "agent_sdk.records",
    "Usage": "agent_sdk.records",
    "AgentSDKError": "agent_sdk.errors",
    "InvalidInput": "agent_sdk.errors",
    "ConfigError": "agent_sdk.errors",
    "NotFound": "agent_sdk.errors",
    "Conflict": "agent_sdk.errors",
    "AuthenticationError": "agent_sdk.errors",
    "PermissionDenied": "agent_sdk.errors",
    "QuotaExceeded": "agent_sdk.errors",
    "BackendUnavailable": "agent_sdk.errors",
    "ModelError": "agent_sdk.errors",
    "ToolError": "agent_sdk.errors",
}

__all__ = [
    "Agent",
    "AgentRegistry",
    "AgentSDKError",
    "AuthenticationError",
    "BackendUnavailable",
    "ConfigError",
    "Conflict",
    "Event",
    "EventType",
    "HttpBackend",
    "InvalidInput",
    "LocalBackend",
    "ModelError",
    "ModelProvider",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "Run",
    "RunResult",
    "RunStatus",
    "Runtime",
    "ScriptedModel",
    "Session",
    "Settings",
    "Tool",
    "ToolContext",
    "ToolError",
    "Usage",
    "__version__",
    "load_settings",
    "open_store",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from agent_sdk.backend.http import HttpBackend
    from agent_sdk.backend.local import LocalBackend
    from agent_sdk.config import Settings, load_settings
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.engine.agent import Agent, AgentRegistry, RunResult
    from agent_sdk.engine.models.base import ModelProvider
    from agent_sdk.engine.models.scripted import ScriptedModel
    from agent_sdk.engine.tools import Tool, ToolContext, tool
    from agent_sdk.errors import (
        AgentSDKError,
        AuthenticationError,
        BackendUnavailable,
        ConfigError,
        Conflict,
        InvalidInput,
        ModelError,
        NotFound,
        PermissionDenied,
        QuotaExceeded,
        ToolError,
    )
    from agent_sdk.records import Event, EventType, Run, RunStatus, Session, Usage
    from agent_sdk.store import open_store
