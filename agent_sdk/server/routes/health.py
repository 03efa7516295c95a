"""Probes: ``/health`` (liveness, no I/O: the process answers) and ``/ready`` (readiness: the
store answers and is migrated). Neither needs a token, so orchestrators can call them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.responses import Response

from agent_sdk.errors import AgentSDKError, BackendUnavailable
from agent_sdk.server.deps import RuntimeDep
from agent_sdk.server.errors import problem_responses


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    checks: dict[str, str] = {"store": "ok"}


async def health() -> Response:
    return JSONResponse({"status": "ok"})


async def ready(rt: RuntimeDep) -> Response:
    try:
        rt.store.check()
    except AgentSDKError as exc:
        # Unreachable and "migrations pending" alike mean: do not send traffic here yet.
        raise BackendUnavailable(
            f"not ready: {exc.message}", hint=exc.hint, checks={"store": exc.code}
        ) from exc
    return JSONResponse({"status": "ready", "checks": {"store": "ok"}})


def router() -> APIRouter:
    r = APIRouter(tags=["health"])
    r.get("/health", response_model=Health, summary="Liveness probe")(health)
    r.get(
        "/ready", response_model=Ready, summary="Readiness probe", responses=problem_responses(503)
    )(ready)
    return r


__all__ = ["router"]
