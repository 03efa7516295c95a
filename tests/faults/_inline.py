"""Helpers of the inline-crash drill (test_inline_crash.py): runs made to be caught in flight,
and what the drill expects of them once it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agent_sdk.records import Event, EventType
from agent_sdk.store import open_store
from faults._invariants import check_invariants, tool_log

ORG = "default"
# Inputs that break naive stores and templates: quotes, SQL, the template's own braces,
# control characters, other scripts, a long one.
ODD = [
    "'; DROP TABLE runs; --",
    'quote " backslash \\ tab \t newline \n end',
    "{input} {tool_result} {0} {{}}",
    "emoji \U0001f680 rtl \u05e9\u05dc\u05d5\u05dd e\u0301",
    "x" * 5_000,
    "\u2028\u2029 line separators",
]


def agent(i: int, calls: Path) -> dict[str, Any]:
    """Five model turns and two tool calls, each appending the run's tag to ``calls``: a line
    there is a tool that ran. The model waits, so runs are in flight when the kill lands."""

    def write(step: int) -> dict[str, Any]:
        line = f"run-{i}-call-{step}\n"
        args = {"path": str(calls), "content": line, "append": True}
        return {"tool": "fs.write", "arguments": args, "latency": 0.2}

    script = [write(1), {"tool": "fs.list", "arguments": {"path": str(calls.parent)}},
              write(2), {"tool": "fs.list", "arguments": {"path": str(calls.parent)}},
              {"text": "done {input}", "latency": 2.0}]  # fmt: skip
    tools = ["fs.write", "fs.list"]
    return {"name": f"drill-{i}", "model": "scripted", "script": script, "tools": tools}


def text_input(i: int) -> str:
    return f"#{i} {ODD[i % len(ODD)]}"


def all_runs(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{url}/v1/runs", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        out.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def _written_line(call: Event) -> str | None:
    """The line an fs.write call appends to the calls log (fs.list logs nothing)."""
    if call.data.get("name") != "fs.write":
        return None
    return str(call.data["arguments"]["content"]).rstrip("\n")


def check_outcomes(database_url: str, created: dict[str, int], calls: Path) -> int:
    """After a drill: the invariants every drill checks (_invariants.py), then what this one
    expects of each run: it succeeded with its own output, with one run.started per attempt,
    four calls each answered once, successfully. Returns how many runs were taken over
    (attempts > 1)."""
    store = open_store(database_url)
    try:
        checked = check_invariants(
            store, ORG, created, executions=tool_log(calls), line_of=_written_line
        )
    finally:
        store.close()
    taken_over = 0
    for run_id, i in created.items():
        run, events, types = checked[run_id].run, checked[run_id].events, checked[run_id].types
        assert run.status == "succeeded", (run_id, run.status, run.error)
        assert run.output == "done " + text_input(i)
        assert types[0] == EventType.RUN_CREATED, types
        assert types.count(EventType.RUN_STARTED) == run.attempts, types
        taken_over += run.attempts > 1
        results = [e for e in events if e.type == EventType.TOOL_RESULT]
        assert types.count(EventType.TOOL_CALL) == 4, types
        assert len(results) == 4 and all(e.data["ok"] for e in results), results
    return taken_over
