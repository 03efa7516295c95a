"""/v1/admin/...: orgs, API keys, the audit log; and /v1/auth/whoami.

Thin, like every route module: each handler checks nothing itself (its ``Caller`` dependency did)
and calls one core service, which records its own audit entry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from agent_sdk.core.api_keys import MAX_BURST, MAX_GRACE_SECONDS, MAX_RATE
from agent_sdk.records import ApiKey
from agent_sdk.server.deps import AnyCaller, AuditAdmin, KeysAdmin, OrgsAdmin, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.params import After, Cursor
from agent_sdk.server.responses import JSONResponse

KeyId = Annotated[str, Path(description="an API key id")]
OrgIdPath = Annotated[str, Path(description="an org id")]


class CreateOrg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="1-64 letters, digits, '_' or '-'", examples=["acme"])
    name: str | None = Field(default=None, max_length=200)


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100, examples=["ci"])
    role: Literal["viewer", "operator", "admin"] = "viewer"
    scopes: list[str] | None = Field(default=None, description="replaces the role's scopes")
    expires_at: str | None = Field(default=None, description="ISO-8601, in the future")
    rate_per_second: float | None = Field(default=None, gt=0, le=MAX_RATE)
    burst: int | None = Field(default=None, ge=1, le=MAX_BURST)
    ip_allowlist: list[str] | None = Field(default=None, description="CIDRs, IPv4 or IPv6")


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="how long the old secret stays valid, in seconds",
    )


def _key_with_token(key: ApiKey, token: str, status: int) -> Response:
    # The token appears in this one answer and nowhere else, ever.
    return JSONResponse({"key": key.to_dict(), "token": token}, status)


# -- whoami --------------------------------------------------------------------------------------
async def whoami(who: AnyCaller) -> Response:
    return JSONResponse(who.principal.to_dict() | {"acting_in": who.org_id})


# -- orgs ----------------------------------------------------------------------------------------
async def create_org(body: CreateOrg, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    org = rt.orgs.create_as(who.principal, body.id, name=body.name, actor=who.actor)
    return JSONResponse(org.to_dict(), 201, headers={"Location": f"/v1/admin/orgs/{org.id}"})


async def list_orgs(
    who: OrgsAdmin,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = rt.orgs.list_as(who.principal, limit=limit, cursor=cursor)
    return JSONResponse(
        {"data": [o.to_dict() for o in page.items], "next_cursor": page.next_cursor}
    )


async def get_org(org_id: OrgIdPath, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.orgs.get_as(who.principal, org_id).to_dict())


# -- API keys ------------------------------------------------------------------------------------
async def create_key(body: CreateKey, who: KeysAdmin, rt: RuntimeDep) -> Response:
    key, token = rt.keys.create_as(
        who.principal,
        who.org_id,
        name=body.name,
        role=body.role,
        scopes=body.scopes,
        expires_at=body.expires_at,
        rate_per_second=body.rate_per_second,
        burst=body.burst,
        ip_allowlist=body.ip_allowlist,
        actor=who.actor,
    )
    return _key_with_token(key, token, 201)


async def list_keys(
    who: KeysAdmin,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = rt.keys.list(who.org_id, limit=limit, cursor=cursor)
    return JSONResponse(
        {"data": [k.to_dict() for k in page.items], "next_cursor": page.next_cursor}
    )


async def get_key(key_id: KeyId, who: KeysAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.keys.get(who.org_id, key_id).to_dict())


async def rotate_key(
    key_id: KeyId, who: KeysAdmin, rt: RuntimeDep, body: RotateKey | None = None
) -> Response:
    grace = body.grace_seconds if body is not None else 0
    key, token = rt.keys.rotate_as(
        who.principal, who.org_id, key_id, grace_seconds=grace, actor=who.actor
    )
    return _key_with_token(key, token, 200)


async def revoke_key(key_id: KeyId, who: KeysAdmin, rt: RuntimeDep) -> Response:
    revoked = rt.keys.revoke_as(who.principal, who.org_id, key_id, actor=who.actor)
    return JSONResponse(revoked.to_dict())


# -- audit log -----------------------------------------------------------------------------------
async def audit_tail(
    who: AuditAdmin,
    rt: RuntimeDep,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    entries = rt.audit.tail(who.org_id, after=after, limit=limit)
    return JSONResponse(
        {
            "data": [e.to_dict() for e in entries],
            "next_after": entries[-1].seq if entries else after,
        }
    )


async def audit_export(
    who: AuditAdmin,
    rt: RuntimeDep,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    since: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    lines = rt.audit.export(who.org_id, format, since=since)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    # A generator of lines: the log is read page by page while it is sent, never held whole.
    return StreamingResponse(
        (line if line.endswith("\n") else line + "\n" for line in lines),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-{who.org_id}.{format}"'},
    )


async def audit_verify(who: AuditAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.audit.verify(who.org_id).to_dict())


class VerifyWith(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(
        max_length=4096,
        description="PEM public key (Ed25519) that must have signed every checkpoint; not the"
        " deployment's own key file",
    )


async def audit_verify_with_key(body: VerifyWith, who: AuditAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.audit.verify(who.org_id, public_key=body.public_key).to_dict())


async def audit_checkpoints(
    who: AuditAdmin,
    rt: RuntimeDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="only checkpoints past this seq")] = 0,
) -> Response:
    return StreamingResponse(
        rt.audit.anchor_lines(who.org_id, after=after),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-anchor-{who.org_id}.jsonl"'},
    )


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class, responses=problem_responses(401, 400, 403, 404, 422, 429)
    )
    r.get("/auth/whoami", tags=["auth"], summary="The calling credential")(whoami)
    orgs: dict[str, Any] = {"tags": ["admin: orgs"]}
    r.post("/admin/orgs", status_code=201, summary="Create an org", **orgs)(create_org)
    r.get("/admin/orgs", summary="List orgs", **orgs)(list_orgs)
    r.get("/admin/orgs/{org_id}", summary="Show an org", **orgs)(get_org)
    keys: dict[str, Any] = {"tags": ["admin: API keys"]}
    r.post("/admin/api-keys", status_code=201, summary="Create an API key", **keys)(create_key)
    r.get("/admin/api-keys", summary="List API keys", **keys)(list_keys)
    r.get("/admin/api-keys/{key_id}", summary="Show an API key", **keys)(get_key)
    r.post("/admin/api-keys/{key_id}/rotate", summary="Rotate an API key", **keys)(rotate_key)
    r.post("/admin/api-keys/{key_id}/revoke", summary="Revoke an API key", **keys)(revoke_key)
    r.delete("/admin/api-keys/{key_id}", summary="Revoke an API key", **keys)(revoke_key)
    audit: dict[str, Any] = {"tags": ["admin: audit"]}
    r.get("/admin/audit-logs", summary="Audit records after a seq", **audit)(audit_tail)
    r.get(
        "/admin/audit-logs/export",
        summary="Export the audit log (jsonl or csv), streamed",
        response_class=StreamingResponse,
        **audit,
    )(audit_export)
    r.get("/admin/audit-logs/verify", summary="Verify the audit chain", **audit)(audit_verify)
    r.post(
        "/admin/audit-logs/verify",
        summary="Verify the audit chain against a public key you hold",
        **audit,
    )(audit_verify_with_key)
    r.get(
        "/admin/audit-logs/checkpoints",
        summary="The signed checkpoints (JSON lines), to keep outside the database",
        response_class=StreamingResponse,
        **audit,
    )(audit_checkpoints)
    return r
