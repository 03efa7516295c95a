"""``agent-sdk status``: is the store up, how deep is the queue, which workers are alive."""

from __future__ import annotations

from typing import Any

from agent_sdk.cli.context import OutputFormat, command, current, sub_app
from agent_sdk.cli.output import Column, key_values, out, render_one, table, when

app = sub_app()

WORKER_COLUMNS = [
    Column("NAME", "name", 40),
    Column("HOST", "host", 24),
    Column("PID", "pid"),
    Column("IN FLIGHT", "runs_in_flight"),
    Column("HEALTH", "health", 20),
    Column("HEARTBEAT", lambda r: when(r.get("heartbeat_at"))),
    Column("STARTED", lambda r: when(r.get("started_at"))),
]


def _queue(row: dict[str, Any]) -> str | None:
    queue = row.get("queue")
    if not queue:
        return None
    if queue.get("status") != "ok":
        return str(queue.get("status"))
    counts = ", ".join(f"{k} {queue.get(k, 0)}" for k in ("ready", "delayed", "leased", "dead"))
    return f"ok ({counts})"


def _workers(row: dict[str, Any]) -> str:
    workers = row.get("workers") or {}
    return f"{workers.get('count', 0)} alive, {workers.get('stale', 0)} stale"


SUMMARY = [
    Column("mode", "execution_mode"),
    Column("store", lambda r: r["store"] + (f": {r['store_error']}" if "store_error" in r else "")),
    Column("queue", _queue),
    Column("workers", _workers),
]


@command(app, "status")
def status() -> None:
    """Show the store, queue depth and live workers.

    A worker is alive while its heartbeat is younger than three AGENT_SDK_WORKER_LEASE; a
    stale one stopped beating without removing itself (it was killed). A live worker's HEALTH
    is "queue unreachable" while it waits out an outage of its queue.

    Example: agent-sdk status -o json
    """
    ctx = current()
    data = ctx.backend.status()
    if ctx.output is not OutputFormat.table:
        render_one(data, [], ctx.output)
        return
    fields = [f for f in SUMMARY if f.header != "queue" or data.get("queue")]
    out(key_values(data, fields))
    alive = (data.get("workers") or {}).get("alive") or []
    if alive:
        out("")
        out(table(alive, WORKER_COLUMNS))
