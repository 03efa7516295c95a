"""What the real-process drills share: hostile inputs, an agent whose tool calls leave a line in a
log (a line there is a tool that ran), and submitting runs and waiting until each is in flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agent_sdk.core.runtime import Runtime
from agent_sdk.records import Event
from faults._broker import ORG, wait_until

# Inputs that break naive stores and templates; no newline (the tool log is line-based).
ODD = ["'; DROP TABLE runs; --", 'q " b \\ t \t', "{input} {tool_result} {{}} %s ? $1",
       "\U0001f680 \u05e9\u05dc\u05d5\u05dd e\u0301 \u2028"]  # fmt: skip


def logging_agent(name: str, log: Path, latency: float) -> dict[str, Any]:
    """Four logged tool calls and an answer, each model turn taking ``latency`` seconds."""

    def write(k: int) -> dict[str, Any]:
        args = {"path": str(log), "content": f"{{input}}|{k}\n", "append": True}
        return {"tool": "fs.write", "arguments": args, "latency": latency}

    script = [*(write(k) for k in range(1, 5)), {"text": "done {input}", "latency": latency}]
    return {"name": name, "model": "scripted", "tools": ["fs.write"], "script": script}


def written_line(call: Event) -> str:
    """The tool log line a ``tool.call`` of :func:`logging_agent` writes."""
    return str(call.data["arguments"]["content"]).rstrip("\n")


def submit_runs(client: httpx.Client, agent: dict[str, Any], count: int) -> list[str]:
    """``count`` runs of ``agent`` through the HTTP API, with the hostile inputs in turn."""
    run_ids = []
    for i in range(count):
        answer = client.post(
            "/v1/runs", json={"agent": agent, "input": f"r{i} {ODD[i % len(ODD)]}"}
        )
        assert answer.status_code == 201, answer.text
        run_ids.append(answer.json()["id"])
    return run_ids


def wait_in_flight(api: Runtime, run_ids: list[str], log: Path) -> None:
    """Until every run has a tool result recorded: all of them are mid-way when a fault lands."""

    def in_flight() -> bool:
        return all(
            any(str(e.type) == "tool.result" for e in api.store.iter_events(ORG, r))
            for r in run_ids
        )

    wait_until("every run in flight with a tool result recorded", in_flight, 90, log)
