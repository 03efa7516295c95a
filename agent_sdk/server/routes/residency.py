"""/v1/admin/residency: the region the acting org (``X-Org-Id``, else the caller's own) is kept in.

Reading needs ``admin:orgs``; changing also needs ``admin:platform`` (the core checks it and
audits a refusal). These routes skip the region check of every other route, so that a caller
sent to the wrong server can still learn where its org is served, and a platform admin can fix a
wrong pin from any server (see :mod:`agent_sdk.core.residency`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from agent_sdk.server.deps import Caller, RuntimeDep, needs
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.responses import JSONResponse

ResidencyAdmin = Annotated[Caller, needs("admin:orgs", residency=False)]


class SetResidency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str | None = Field(
        max_length=64,
        description="a lowercase region id (eu, us, eu-west-1); null unpins the org",
        examples=["eu"],
    )


class ResidencyModel(BaseModel):
    org_id: str
    region: str | None = Field(description="null: not pinned, served by every region")
    server_region: str | None = Field(
        description="AGENT_SDK_DATA_REGION of the answering server (null: it serves every region)"
    )
    served_here: bool = Field(description="whether this server serves the org's other requests")


async def get_residency(who: ResidencyAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.residency.show(who.org_id).to_dict())


async def set_residency(body: SetResidency, who: ResidencyAdmin, rt: RuntimeDep) -> Response:
    done = rt.residency.set_as(who.principal, who.org_id, body.region, actor=who.actor)
    return JSONResponse(done.to_dict())


async def clear_residency(who: ResidencyAdmin, rt: RuntimeDep) -> Response:
    done = rt.residency.set_as(who.principal, who.org_id, None, actor=who.actor)
    return JSONResponse(done.to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class,
        tags=["admin: residency"],
        responses=problem_responses(400, 401, 403, 404, 422, 429),
    )
    common: dict[str, Any] = {"response_model": ResidencyModel}
    r.get("/admin/residency", summary="The org's data region", **common)(get_residency)
    r.put("/admin/residency", summary="Pin the org to a region", **common)(set_residency)
    r.delete("/admin/residency", summary="Unpin the org", **common)(clear_residency)
    return r


__all__ = ["router"]
