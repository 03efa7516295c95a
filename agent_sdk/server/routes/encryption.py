"""/v1/admin/encryption-keys: the encryption-at-rest keys of the caller's org.

    GET    /v1/admin/encryption-keys          the org's key generations (metadata only)
    POST   /v1/admin/encryption-keys          rotate: a new active key; the old one is retired
    DELETE /v1/admin/encryption-keys          destroy every key of the org (crypto-shredding)
    POST   /v1/admin/encryption-keys/rewrap   move one batch of old rows to the active key

All need ``admin:orgs`` in the org (``X-Org-Id`` with ``admin:platform`` for another org).
No answer ever carries key material, wrapped or not. Thin, like every route module: the core
service checks, changes and audits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from agent_sdk.core.encryption import MAX_BATCH
from agent_sdk.server.deps import OrgsAdmin, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.params import CURSOR_PATTERN
from agent_sdk.server.responses import JSONResponse


class Rewrap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=500, ge=1, le=MAX_BATCH, description="rows to examine in this call")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        pattern=CURSOR_PATTERN,
        description="the next_cursor of the previous call",
    )


async def list_keys(who: OrgsAdmin, rt: RuntimeDep) -> Response:
    keys = rt.encryption.list(who.org_id)
    return JSONResponse({"enabled": rt.encryption.enabled, "data": [k.to_dict() for k in keys]})


async def rotate_keys(who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.encryption.rotate(who.org_id, actor=who.actor).to_dict(), 201)


async def destroy_keys(who: OrgsAdmin, rt: RuntimeDep) -> Response:
    keys = rt.encryption.destroy(who.org_id, actor=who.actor)
    return JSONResponse({"data": [k.to_dict() for k in keys]})


async def rewrap(
    who: OrgsAdmin, rt: RuntimeDep, body: Annotated[Rewrap | None, Body()] = None
) -> Response:
    body = body or Rewrap()
    report = rt.encryption.rewrap(who.org_id, limit=body.limit, cursor=body.cursor, actor=who.actor)
    return JSONResponse(report.to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class, responses=problem_responses(401, 400, 403, 404, 409, 422, 429)
    )
    tags: dict[str, Any] = {"tags": ["admin: encryption keys"]}
    path = "/admin/encryption-keys"
    r.get(path, summary="List the org's encryption keys (metadata only)", **tags)(list_keys)
    r.post(path, status_code=201, summary="Rotate the org's encryption key", **tags)(rotate_keys)
    r.delete(path, summary="Destroy the org's encryption keys (crypto-shredding)", **tags)(
        destroy_keys
    )
    r.post(path + "/rewrap", summary="Re-encrypt a batch of rows with the active key", **tags)(
        rewrap
    )
    return r
