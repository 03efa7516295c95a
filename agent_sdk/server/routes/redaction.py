"""/v1/admin/redaction: the PII redaction policy of the acting org (``X-Org-Id``, else the
caller's own), with ``admin:orgs``.

    GET    /admin/redaction                   the policy, and every built-in detector's state
    PUT    /admin/redaction                   replace it: {"disabled": [...], "patterns": [...]}
    DELETE /admin/redaction                   back to every built-in, no custom pattern
    PUT    /admin/redaction/patterns/{name}   add or replace one custom pattern
    DELETE /admin/redaction/patterns/{name}   remove one (404 if the org has no such pattern)
    POST   /admin/redaction/preview           {"text"}: what the policy would store, and counts

Thin like every route module: the core service validates (InvalidInput -> 422) and audits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from agent_sdk.core.redaction import BUILTIN_NAMES, MAX_PATTERN_CHARS, NAME, PLACEHOLDER
from agent_sdk.server.deps import OrgsAdmin, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.params import anchored, string_or_null
from agent_sdk.server.responses import JSONResponse

PatternName = Annotated[
    str,
    Path(
        max_length=64,
        description="a custom pattern's name",
        json_schema_extra={"pattern": anchored(NAME)},
    ),
]
# The static rules of redact_safety, as far as a JSON Schema pattern can say them: no unbounded
# repetition (*, + or {n,}); a bare `{` only as a bounded quantifier. The service also compiles
# the regex, bounds the ways it can match and times it, which no schema can express.
REGEX_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "maxLength": MAX_PATTERN_CHARS,
    "pattern": r"^(?:[^\\*+{]|\\[\s\S]|\{[0-9]{1,3}(?:,[0-9]{1,3})?\})+$",
}
PLACEHOLDER_SCHEMA = string_or_null(pattern=anchored(PLACEHOLDER))


class PatternBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regex: str = Field(
        max_length=4096,  # the service refuses more than 512 with a clearer message
        description="a Python regex; every repetition bounded ({1,64}, not +)",
        examples=["EMP-\\d{6}"],
        json_schema_extra=REGEX_SCHEMA,
    )
    placeholder: str | None = Field(
        default=None,
        max_length=64,
        description="[UPPER_CASE]; default: [NAME]",
        json_schema_extra=PLACEHOLDER_SCHEMA,
    )


class CustomPatternModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        max_length=64, examples=["employee_id"], json_schema_extra={"pattern": anchored(NAME)}
    )
    regex: str = Field(max_length=4096, json_schema_extra=REGEX_SCHEMA)
    placeholder: str | None = Field(
        default=None, max_length=64, json_schema_extra=PLACEHOLDER_SCHEMA
    )


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="built-in detectors to turn off",
        json_schema_extra={"items": {"type": "string", "enum": list(BUILTIN_NAMES)}},
    )
    patterns: list[CustomPatternModel] = Field(default_factory=list, max_length=64)


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=200_000)


class DetectorModel(BaseModel):
    name: str
    placeholder: str
    enabled: bool
    description: str


class RedactionModel(BaseModel):
    org_id: str
    enabled: bool = Field(description="AGENT_SDK_PII_REDACTION_ENABLED of the answering server")
    disabled: list[str]
    patterns: list[CustomPatternModel]
    detectors: list[DetectorModel]


class PreviewModel(BaseModel):
    redacted: str
    findings: dict[str, int] = Field(description="detector or pattern name -> count")


async def get_policy(who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.redaction.show(who.org_id).to_dict())


async def put_policy(body: PolicyBody, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    raw = body.model_dump(exclude_none=True)
    return JSONResponse(rt.redaction.replace(who.org_id, raw, actor=who.actor).to_dict())


async def reset_policy(who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.redaction.reset(who.org_id, actor=who.actor).to_dict())


async def put_pattern(
    name: PatternName, body: PatternBody, who: OrgsAdmin, rt: RuntimeDep
) -> Response:
    view = rt.redaction.set_pattern(who.org_id, name, body.regex, body.placeholder, actor=who.actor)
    return JSONResponse(view.to_dict())


async def delete_pattern(name: PatternName, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.redaction.delete_pattern(who.org_id, name, actor=who.actor).to_dict())


async def preview(body: PreviewBody, who: OrgsAdmin, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.redaction.preview(who.org_id, body.text).to_dict())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(
        route_class=route_class,
        tags=["admin: redaction"],
        responses=problem_responses(400, 401, 403, 404, 422, 429),
    )
    common: dict[str, Any] = {"response_model": RedactionModel}
    r.get("/admin/redaction", summary="The org's PII redaction policy", **common)(get_policy)
    r.put("/admin/redaction", summary="Replace the org's redaction policy", **common)(put_policy)
    r.delete("/admin/redaction", summary="Reset the redaction policy", **common)(reset_policy)
    r.put("/admin/redaction/patterns/{name}", summary="Add or replace a custom pattern", **common)(
        put_pattern
    )
    r.delete("/admin/redaction/patterns/{name}", summary="Remove a custom pattern", **common)(
        delete_pattern
    )
    r.post(
        "/admin/redaction/preview",
        summary="Redact a sample text with the org's policy (nothing is stored)",
        response_model=PreviewModel,
    )(preview)
    return r


__all__ = ["router"]
