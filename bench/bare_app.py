"""The baseline servers of the benchmarks: the least a FastAPI / sse-starlette service can do for
the same request, with the same SQLite settings as agent-sdk (WAL, synchronous=NORMAL)."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

DB = os.environ.get("BARE_DB", "bare.db")
conn = sqlite3.connect(DB, isolation_level=None, check_same_thread=False)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, body TEXT, status TEXT)")

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/runs", status_code=201)
async def create(request: Request) -> dict[str, str]:
    body = await request.json()
    run_id = uuid.uuid4().hex
    conn.execute("INSERT INTO runs VALUES (?, ?, 'succeeded')", (run_id, json.dumps(body)))
    return {"id": run_id, "status": "queued"}


@app.get("/runs/{run_id}")
async def show(run_id: str) -> dict[str, str]:
    row = conn.execute("SELECT id, status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return {"id": row[0], "status": row[1]}


N_EVENTS = int(os.environ.get("BARE_EVENTS", "10000"))
PAYLOADS = [
    json.dumps({"run_id": "run_x", "seq": i, "type": "tool.result", "time": "t", "data": {"i": i}})
    for i in range(1, N_EVENTS + 1)
]


@app.get("/sse")
async def sse() -> EventSourceResponse:
    async def gen() -> AsyncIterator[ServerSentEvent]:
        for i, data in enumerate(PAYLOADS, 1):
            yield ServerSentEvent(data=data, id=str(i), event="tool.result")

    return EventSourceResponse(gen())
