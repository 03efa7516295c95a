"""Probes: ``/health`` (liveness, no I/O: the process answers) and ``/ready`` (readiness: the
store answers and is migrated; in queue mode also the queue opens and answers, and the number
of live workers is reported). Neither needs a token, so orchestrators can call them.

No live worker is not "not ready": the server still accepts runs, which wait queued for one.
A queue that cannot be opened is, since an accepted run would then wait for recovery."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from agent_sdk.errors import AgentSDKError, BackendUnavailable
from agent_sdk.server.deps import RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.responses import JSONResponse


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    checks: dict[str, str | int] = {"store": "ok"}


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
    checks: dict[str, str | int] = {"store": "ok"}
    if rt.settings.execution.mode == "queue":
        from agent_sdk.core.status import live_workers, queue_check

        state, _ = queue_check(rt)
        if state != "ok":
            raise BackendUnavailable(
                "not ready: the queue cannot be reached",
                hint="check AGENT_SDK_QUEUE_BACKEND and its settings",
                checks={"store": "ok", "queue": state},
            )
        checks["queue"] = "ok"
        try:
            checks["workers"] = len(live_workers(rt)[0])
        except AgentSDKError:
            checks["workers"] = 0
    return JSONResponse({"status": "ready", "checks": checks})


def router() -> APIRouter:
    r = APIRouter(tags=["health"])
    r.get("/health", response_model=Health, summary="Liveness probe")(health)
    r.get(
        "/ready", response_model=Ready, summary="Readiness probe", responses=problem_responses(503)
    )(ready)
    return r


__all__ = ["router"]
