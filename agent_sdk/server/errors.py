"""The HTTP edge of the error tree: one table from :mod:`agent_sdk.errors` to statuses, and every
error rendered as ``application/problem+json`` (RFC 9457)::

    {"type": "urn:agent-sdk:error:not_found", "title": "Not found", "status": 404,
     "detail": "run 'run_x' not found", "code": "not_found", "hint": "...", "request_id": "..."}

``code`` is the error's code in the tree, so :class:`~agent_sdk.backend.http.HttpBackend` turns a
problem back into the exception the local backend would have raised. Every response carries an
``X-Request-Id`` (a sane incoming one is echoed, else one is made) that is also in the problem
body and in the log line of a failure, so a user's report can be matched with the server's log.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    InvalidInput,
    ModelError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ToolError,
)
from agent_sdk.server.responses import json_bytes

log = logging.getLogger("agent_sdk.server")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:agent-sdk:error:"
WWW_AUTHENTICATE = 'Bearer realm="agent-sdk"'

# The one table. Lookup walks the exception's MRO, so a subclass added to the tree later gets its
# parent's status until it is given its own row here.
STATUS: dict[type[AgentSDKError], int] = {
    AgentSDKError: 500,
    InvalidInput: 422,
    ConfigError: 422,
    NotFound: 404,
    Conflict: 409,
    AuthenticationError: 401,
    PermissionDenied: 403,
    QuotaExceeded: 429,
    BackendUnavailable: 503,
    ModelError: 502,
    ToolError: 502,
}

# Codes of the problems that do not come from the tree (routing, body size, protocol errors).
# 400 and 422 say "invalid_input" so a client maps them to InvalidInput without a special case.
_HTTP_CODES = {
    400: "invalid_input",
    401: AuthenticationError.code,
    403: PermissionDenied.code,
    404: NotFound.code,
    405: "method_not_allowed",
    406: "not_acceptable",
    409: Conflict.code,
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: InvalidInput.code,
    429: QuotaExceeded.code,
    503: BackendUnavailable.code,
}
_PROBLEM_KEYS = frozenset({"type", "title", "status", "detail", "code", "hint", "request_id"})


def status_for(exc: AgentSDKError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


# -- the documented shape ------------------------------------------------------------------------
class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where the value is: body, query, path or header")
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(examples=["urn:agent-sdk:error:not_found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["run 'run_01J...' not found"])
    code: str = Field(
        description="the error's code in agent-sdk's error tree", examples=["not_found"]
    )
    hint: str | None = Field(default=None, description="what to do about it, when known")
    request_id: str = Field(description="also in the X-Request-Id header and the server log")
    errors: list[FieldError] | None = Field(
        default=None, description="the invalid fields (422 validation errors only)"
    )


_PROBLEM_TEXT = {
    400: "Malformed header (X-Org-Id, Content-Length)",
    401: "Missing or invalid bearer token",
    403: "The credential lacks the scope, the org, or the network this needs",
    404: "No such object in this org, or no such org",
    409: "The object is not in a state that allows this, or a concurrent change won (retry)",
    413: "Request body larger than AGENT_SDK_MAX_BODY_BYTES",
    422: "Invalid input (field errors listed under `errors`)",
    429: "The key's rate limit was reached (see Retry-After and RateLimit headers)",
    503: "The store or the queue is unreachable, or the store is not migrated",
}
# What any request may be answered, whatever its route: the body limit, the Content-Length
# check and the check of text no store can hold (422, server/request_text.py) run before routing.
EVERY_OPERATION = (400, 413, 422)
# What any authenticated operation may also be answered: its credential, scope, org (X-Org-Id:
# 404 for an unknown org), rate limit and parameters are checked on every call, and every call
# reaches a store that may be down, or lose a race (409) on PostgreSQL.
AUTHENTICATED = (401, 403, 404, 409, 422, 429, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem answers (the app moves them to problem+json)."""
    return {
        s: {"model": Problem, "description": _PROBLEM_TEXT.get(s, HTTPStatus(s).phrase)}
        for s in statuses
    }


def document_problems(schema: dict[str, Any]) -> None:
    """Complete an OpenAPI document in place: every operation lists the problem answers it can
    give (:data:`EVERY_OPERATION`, and :data:`AUTHENTICATED` where it needs a credential), each
    as ``application/problem+json`` with the Problem schema. Declared once here, so a new route
    cannot forget one; a route's own entry (a more precise description) is kept."""
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            answers = operation.setdefault("responses", {})
            statuses = EVERY_OPERATION + (AUTHENTICATED if operation.get("security") else ())
            for status in statuses:
                answers.setdefault(
                    str(status), {"description": _PROBLEM_TEXT[status], "content": problem}
                )
            for status, answer in answers.items():
                # Every error is a Problem: FastAPI files the models under application/json and
                # documents its own HTTPValidationError for 422, which this app never sends.
                if status[:1] in "45":
                    answer["content"] = dict(problem)
    schemas = schema.get("components", {}).get("schemas", {})
    if "HTTPValidationError" in schemas and "/HTTPValidationError" not in json.dumps(
        schema.get("paths", {})
    ):
        schemas.pop("HTTPValidationError")
        schemas.pop("ValidationError", None)


# -- rendering -----------------------------------------------------------------------------------


def request_id_of(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else "-"


def problem_response(
    request_id: str,
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if hint:
        body["hint"] = hint
    body["request_id"] = request_id
    for key, value in (extra or {}).items():
        if key not in _PROBLEM_KEYS:  # extension members never shadow the standard ones
            body[key] = value
    # NaN allowed: a problem must render whatever a detail holds, never fail in turn.
    content = json_bytes(body, default=str, allow_nan=True)
    return Response(content, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class HTTPProblem(HTTPException):
    """An HTTP-level refusal that is not an error of the tree (a malformed header, a body too
    large); rendered like every other problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers)
        self.code = code or _HTTP_CODES.get(status, "http_error")
        self.hint = hint


async def _agent_sdk_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AgentSDKError)
    hook = getattr(request.app.state, "on_error", None)
    if hook is not None:  # the app's audit of failed changes (errors.py knows no core)
        hook(request, exc)
    status = status_for(exc)
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
    extra = dict(exc.details)
    if isinstance(exc, ModelError):
        extra["retryable"] = exc.retryable
    message, hint = exc.message, exc.hint
    if status >= 500:
        log.warning("%s %s -> %d %s (request %s)", request.method, request.url.path, status,
                    exc.message, request_id_of(request))  # fmt: skip
    if status == 500:
        # An error of no known kind is a bug: what it says is for the log, not the client.
        message = "the server failed to handle this request; the error was logged"
        hint = f"report it with the request id {request_id_of(request)}"
        extra = {}
    return problem_response(
        request_id_of(request),
        status,
        exc.code,
        exc.title,
        message,
        hint=hint,
        headers=headers,
        extra=extra,
    )


def _field_error(err: Any) -> dict[str, Any]:
    # Only loc, msg and type: "input" could echo a secret or a megabyte of body back.
    return {"loc": list(err.get("loc", ())), "msg": str(err.get("msg")), "type": err.get("type")}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]) + (
        "; ..." if len(errors) > 3 else ""
    )
    return problem_response(
        request_id_of(request),
        422,
        InvalidInput.code,
        InvalidInput.title,
        f"invalid request: {summary}",
        hint="see /docs for the expected request",
        extra={"errors": errors},
    )


async def render_http_error(request: Request, exc: Exception) -> Response:
    """A Starlette HTTPException (unknown route, wrong method, HTTPProblem) as a problem."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = str(exc.detail)
    if status == 404 and detail == phrase:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405 and detail == phrase:
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    elif status == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    code = exc.code if isinstance(exc, HTTPProblem) else _HTTP_CODES.get(status, "http_error")
    hint = exc.hint if isinstance(exc, HTTPProblem) else None
    return problem_response(
        request_id_of(request), status, code, phrase, detail, hint=hint, headers=headers or None
    )


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """The methods routing would serve at this path, found by asking every route as the router
    does. Starlette's own ``Allow`` names only the methods of the first route whose path matched,
    so ``DELETE /admin/api-keys/{key_id}`` was missing beside its ``GET``."""
    from starlette.routing import Match

    routes = getattr(request.app, "routes", ())
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentSDKError, _agent_sdk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, render_http_error)


# -- request ids and the last line of defence ----------------------------------------------------
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")


class RequestContext:
    """Pure ASGI middleware (BaseHTTPMiddleware would buffer and slow every response): gives the
    request an id, adds ``X-Request-Id`` to the response, and turns an unexpected exception into
    a logged 500 problem without a traceback in the answer.

    It also adds the deprecation headers that :class:`~agent_sdk.server.app.DeprecatedRoute`
    asks for in the request state, so error answers on old paths carry them too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode("ascii")))
                # Headers the request's handling decided on (rate limits), errors included.
                for name, value in state.get("extra_headers", {}).items():
                    headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
                successor = state.get("successor_path")
                if successor is not None:
                    headers += [
                        (b"x-api-deprecated", b"true"),
                        (b"deprecation", b"true"),
                        (b"link", f'<{successor}>; rel="successor-version"'.encode("latin-1")),
                    ]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)", scope.get("method"), scope.get("path"), rid
            )
            if started:
                raise  # the answer is under way: the server can only drop the connection
            response = problem_response(
                rid,
                500,
                "internal_error",
                "Internal error",
                "the server failed to handle this request; the error was logged",
                hint=f"report it with the request id {rid}",
            )
            await response(scope, receive, send_with_id)


# A request id of our own: 16 hex digits drawn at random once per process, then a counter, 32
# in all like a UUID's. Unique across processes (the prefix is drawn again in a forked child)
# without the system call for fresh randomness that uuid4 makes on every request.
_rid_prefix = secrets.token_hex(8)
_rid_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_rid_prefix}{next(_rid_counter):016x}"


def _reseed_request_ids() -> None:
    global _rid_prefix, _rid_counter
    _rid_prefix, _rid_counter = secrets.token_hex(8), itertools.count(1)


os.register_at_fork(after_in_child=_reseed_request_ids)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.fullmatch(text) else None
    return None
