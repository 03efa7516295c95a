"""The engine: the agent loop, model providers and tools. It knows no store, queue or server."""

from __future__ import annotations

from agent_sdk.engine.agent import Agent, AgentRegistry, RunResult
from agent_sdk.engine.tools import ToolContext, tool

__all__ = ["Agent", "AgentRegistry", "RunResult", "ToolContext", "tool"]
