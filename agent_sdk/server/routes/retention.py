"""/v1/admin/retention: the acting org's retention policy (``X-Org-Id``, else the caller's own),
and a sweep on demand.

Every route needs ``admin:orgs``: a policy only ever deletes the org's own data, sooner, and an
org admin already manages the org. Acting in another org takes ``admin:platform`` (checked by
``needs``), and so does sweeping every org at once (checked by the core).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.responses import Response

from agent_sdk.records.retention import MAX_DAYS, MAX_KEEP_LAST
from agent_sdk.server.deps import Caller, RuntimeDep, needs
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.responses import JSONResponse

RetentionAdmin = Annotated[Caller, needs("admin:orgs")]

_DAYS = "days; null: keep forever"


class RetentionBody(BaseModel):
    """The whole policy: a field left out (or null) is no limit."""

    model_config = ConfigDict(extra="forbid")
    runs_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS, description=_DAYS)
    events_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS, description=_DAYS)
    audit_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS, description=_DAYS)
    keep_last_runs_per_session: StrictInt | None = Field(
        default=None, ge=1, le=MAX_KEEP_LAST, description="null: keep every run of a session"
    )


class RetentionModel(RetentionBody):
    model_config = ConfigDict(extra="forbid")
    org_id: str


class OrgSweepModel(BaseModel):
    org_id: str
    runs: int
    events: int
    sessions: int
    idempotency_keys: int
    audit_records: int
    batches: int = Field(description="write transactions that deleted rows")
    error: str | None
    cutoffs: dict[str, Any] = Field(description="what was written before these times expired")


class SweepModel(BaseModel):
    dry_run: bool
    started_at: str
    finished_at: str
    orgs: list[OrgSweepModel]


async def get_retention(who: RetentionAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.retention.show(who.org_id).to_dict())


async def set_retention(body: RetentionBody, who: RetentionAdmin, rt: RuntimeDep) -> Response:
    view = rt.retention.set(who.org_id, body.model_dump(), actor=who.actor)
    return JSONResponse(view.to_dict())


async def clear_retention(who: RetentionAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.retention.clear(who.org_id, actor=who.actor).to_dict())


def sweep(
    who: RetentionAdmin,
    rt: RuntimeDep,
    dry_run: Annotated[bool, Query(description="count what would be deleted; delete nothing")] = (
        False
    ),
    all_orgs: Annotated[
        bool, Query(description="every org with a policy (needs admin:platform)")
    ] = False,
) -> Response:
    # A plain def: FastAPI runs it in a thread pool, so a long sweep never blocks the loop.
    report = rt.retention.sweep_as(
        who.principal, who.org_id, all_orgs=all_orgs, dry_run=dry_run, actor=who.actor
    )
    return JSONResponse(report.to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class,
        tags=["admin: retention"],
        responses=problem_responses(400, 401, 403, 404, 422, 429),
    )
    common: dict[str, Any] = {"response_model": RetentionModel}
    r.get("/admin/retention", summary="The org's retention policy", **common)(get_retention)
    r.put("/admin/retention", summary="Replace the org's retention policy", **common)(set_retention)
    r.delete("/admin/retention", summary="Remove the org's retention policy", **common)(
        clear_retention
    )
    r.post(
        "/admin/retention/sweep",
        summary="Delete what the retention policy expired, now",
        response_model=SweepModel,
    )(sweep)
    return r


__all__ = ["router"]
