"""/v1/sessions: list and show. A session is created with its first run (POST /v1/runs with a
``session_id``), so there is no create route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import Response

from agent_sdk.server.deps import RuntimeDep, SessionsReader
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.params import Cursor
from agent_sdk.server.responses import JSONResponse

SessionId = Annotated[str, Path(description="a session id")]


class SessionModel(BaseModel):
    """A session (agent_sdk.records.Session)."""

    id: str
    org_id: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    metadata: dict[str, Any] = {}
    run_count: int = 0


class SessionPage(BaseModel):
    data: list[SessionModel]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


async def list_sessions(
    who: SessionsReader,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = rt.sessions.list(who.org_id, limit=limit, cursor=cursor)
    return JSONResponse(
        {"data": [s.to_dict() for s in page.items], "next_cursor": page.next_cursor}
    )


async def get_session(session_id: SessionId, who: SessionsReader, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.sessions.get(who.org_id, session_id).to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        tags=["sessions"],
        route_class=route_class,
        responses=problem_responses(401, 400, 403, 404, 422, 429),
    )
    r.get("/sessions", response_model=SessionPage, summary="List sessions, newest first")(
        list_sessions
    )
    r.get("/sessions/{session_id}", response_model=SessionModel, summary="Show a session")(
        get_session
    )
    return r


__all__ = ["SessionModel", "router"]
