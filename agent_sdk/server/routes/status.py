"""/v1/status: store, queue depth and live workers (``agent-sdk status`` against a server)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import Response

from agent_sdk.core.status import status
from agent_sdk.server.deps import RunsReader, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.responses import JSONResponse


class StatusModel(BaseModel):
    execution_mode: str = Field(examples=["queue"])
    store: str = Field(description="ok, or the error code of the store check")
    store_error: str | None = None
    queue: dict[str, Any] | None = Field(
        default=None,
        description="queue mode only: status (ok or an error code) and jobs by state "
        "(ready, delayed, leased, dead)",
    )
    workers: dict[str, Any] = Field(
        description="alive: workers whose heartbeat is younger than three leases; count; "
        "stale: registered workers that stopped beating (killed without cleaning up)"
    )


async def get_status(who: RunsReader, rt: RuntimeDep) -> Response:
    return JSONResponse(status(rt))


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        tags=["status"], route_class=route_class, responses=problem_responses(401, 403, 429)
    )
    r.get("/status", response_model=StatusModel, summary="Store, queue and worker status")(
        get_status
    )
    return r


__all__ = ["router"]
