"""Helpers of the inline-crash drill (test_inline_crash.py): runs made to be caught in flight,
the invariants every drill checks after it ends, and waiting on conditions (never fixed sleeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agent_sdk.records import EventType
from agent_sdk.store import open_store

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


def check_invariants(database_url: str, created: dict[str, int], calls: Path) -> int:
    """After a drill: every accepted run ended once (succeeded, its own output); no event after
    its terminal event; seq 1..n with no gap or repeat; a tool whose result was recorded ran
    once. Returns how many runs were taken over (attempts > 1)."""
    ran: dict[str, int] = {}
    for line in calls.read_text().splitlines():
        ran[line] = ran.get(line, 0) + 1
    store = open_store(database_url)
    taken_over = 0
    try:
        for run_id, i in created.items():
            run = store.get_run(ORG, run_id)
            assert run.status == "succeeded", (run_id, run.status, run.error)
            assert run.output == "done " + text_input(i)
            events = store.list_events(ORG, run_id, limit=10_000)
            types = [e.type for e in events]
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), types
            assert sum(EventType(t).terminal for t in types) == 1, types
            assert types[0] == EventType.RUN_CREATED and types[-1] == EventType.RUN_SUCCEEDED
            starts = [e for e in events if e.type == EventType.RUN_STARTED]
            assert len(starts) == run.attempts, types
            taken_over += run.attempts > 1
            results = [e for e in events if e.type == EventType.TOOL_RESULT]
            calls_made = [e for e in events if e.type == EventType.TOOL_CALL]
            # Each call is recorded once and answered once, however many attempts it took.
            assert len({e.data["id"] for e in calls_made}) == len(calls_made) == 4, types
            assert len(results) == 4 and all(e.data["ok"] for e in results), results
            for step in (1, 2):
                times = ran.get(f"run-{i}-call-{step}", 0)
                assert 1 <= times <= 2, (run_id, step, times)
                # Ran again only if the crash came between running it and recording its result.
                recorded_before_crash = _result_before_takeover(events, step)
                if recorded_before_crash:
                    assert times == 1, (run_id, step, times, types)
    finally:
        store.close()
    return taken_over


def _result_before_takeover(events: list[Any], step: int) -> bool:
    """Whether the result of write ``step`` (the 1st or 3rd tool call) was recorded before the
    last run.started, i.e. by an attempt that was then taken over."""
    starts = [e.seq for e in events if e.type == EventType.RUN_STARTED]
    results = [e for e in events if e.type == EventType.TOOL_RESULT]
    index = 0 if step == 1 else 2
    return len(starts) > 1 and results[index].seq < starts[-1]
