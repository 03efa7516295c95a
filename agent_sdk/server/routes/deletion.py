"""/v1/admin/runs/{id} and /v1/admin/sessions/{id}: erase a run, or a session with its runs.

``DELETE`` needs ``admin:orgs`` and acts in the caller's org (``X-Org-Id`` with
``admin:platform``). It answers 200 with what went (counts, never content) rather than an empty
204, so the CLI's ``-o json`` shows the same receipt over HTTP as on a local database. A second
``DELETE`` of the same id is a 404 like any unknown id: after erasure there is nothing left to tell
a deleted run from one that never existed, and every other route says 404 for it too.

Handlers run the erasure in a worker thread: a session may hold many runs, and the SQLite store
ends an erasure with a WAL checkpoint that may wait briefly for readers; neither should hold up the
event loop that streams other runs.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import Response

from agent_sdk.server.deps import OrgsAdmin, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.responses import JSONResponse

RunId = Annotated[str, Path(description="a run id (run_...)")]
SessionId = Annotated[str, Path(description="a session id")]


class DeletionModel(BaseModel):
    """What an erasure removed (agent_sdk.records.Deletion); the audit record holds the same."""

    kind: str = Field(description="run or session", examples=["run"])
    id: str
    org_id: str
    runs: int = Field(description="runs deleted")
    events: int = Field(description="events deleted (model turns, tool calls and results)")
    idempotency_keys: int = Field(description="Idempotency-Key claims answering with a deleted run")
    sessions: int = Field(description="sessions deleted (0 or 1)")


async def delete_run(run_id: RunId, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    done = await asyncio.to_thread(rt.runs.delete, who.org_id, run_id, actor=who.actor)
    return JSONResponse(done.to_dict())


async def delete_session(session_id: SessionId, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    done = await asyncio.to_thread(rt.sessions.delete, who.org_id, session_id, actor=who.actor)
    return JSONResponse(done.to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class,
        tags=["admin: deletion"],
        responses=problem_responses(400, 401, 403, 404, 422, 429),
    )
    r.delete(
        "/admin/runs/{run_id}",
        response_model=DeletionModel,
        summary="Erase a run with its events, tool outputs and usage",
    )(delete_run)
    r.delete(
        "/admin/sessions/{session_id}",
        response_model=DeletionModel,
        summary="Erase a session with all of its runs",
    )(delete_session)
    return r


__all__ = ["DeletionModel", "router"]
