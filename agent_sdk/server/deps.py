"""Dependencies of the API routes: who is calling, in which org, with which scope.

Each route declares the scope it needs (``Caller`` annotated with ``needs("runs:read")``). The
checks themselves live in :mod:`agent_sdk.core.auth`; this module only reads the request
(bearer header, ``X-Org-Id``, peer address) and writes what the checks decided into the answer
(rate-limit headers; an audit record for a refused state-changing request).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a thread pool,
which would cost a thread hop on every request for checks that take microseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent_sdk.config import Settings
from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.core.orgs import ORG_ID
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
)
from agent_sdk.records import Principal
from agent_sdk.security.network import client_ip
from agent_sdk.security.ratelimit import rate_limit_headers
from agent_sdk.server.errors import HTTPProblem
from agent_sdk.server.params import ORG_ID_PATTERN

# auto_error=False: a missing or non-Bearer header must give our 401 problem (with the same
# wording for every kind of failure), not FastAPI's own 403. The scheme also documents the
# security requirement in /openapi.json.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`asdk_...`) or, when enabled, an HS256 JWT.",
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("agent_sdk.server")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    org_id: str  # the org this request acts in
    actor: Actor  # for the audit records of what it changes


def needs(scope: str | None, *, residency: bool = True) -> Any:
    """A dependency admitting callers that hold ``scope`` (None: any authenticated caller).
    With ``AGENT_SDK_DATA_REGION`` it also refuses an org kept in another region (403
    ``wrong_region``), after the org checks, so nobody learns the region of an org they cannot
    act in; ``residency=False`` is for the routes that read and move an org's region."""

    async def admit(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        x_org_id: Annotated[
            str | None,
            Header(
                alias="X-Org-Id",
                description="the org to act in (default: the caller's)",
                # Documented, not validated by FastAPI: the check below runs after
                # authentication and answers 400 (an anonymous caller learns nothing first).
                json_schema_extra={"pattern": ORG_ID_PATTERN},
            ),
        ] = None,
    ) -> Caller:
        rt = runtime_of(request)
        token = credentials.credentials.strip() if credentials is not None else None
        # Authentication first: an anonymous caller learns nothing about orgs or scopes.
        principal = rt.auth.authenticate(token)
        if x_org_id is not None and not ORG_ID.fullmatch(x_org_id):
            raise HTTPProblem(
                400, "invalid X-Org-Id header", hint="an org id is 1-64 letters, digits, '_' or '-'"
            )
        peer = request.client.host if request.client else None
        ip = client_ip(
            peer, request.headers.get("x-forwarded-for"), settings_of(request).trusted_proxies
        )
        actor = Actor.of(principal, request_id=request.state.request_id, source_ip=ip)
        try:
            admission = rt.auth.authorize(
                principal, scope=scope, requested_org=x_org_id, client_ip=ip
            )
            if residency:
                rt.residency.check(admission.org_id)
        except RateLimited as exc:
            request.state.extra_headers = rate_limit_headers(
                exc.decision, rate=exc.rate, burst=exc.burst
            )
            _record_refusal(request, rt, principal, actor, exc.message)
            raise
        except PermissionDenied as exc:
            _record_refusal(request, rt, principal, actor, exc.message)
            raise
        if admission.rate is not None:
            rate, burst = principal.rate_per_second or 0, admission.rate.limit
            request.state.extra_headers = rate_limit_headers(admission.rate, rate=rate, burst=burst)
        caller = Caller(principal, admission.org_id, actor)
        request.state.caller = caller  # for the audit record of a change that then fails
        return caller

    return Depends(admit)


def _record_refusal(
    request: Request, rt: Runtime, principal: Principal, actor: Actor, reason: str
) -> None:
    """A refused state-changing request is an audit record in the caller's own org."""
    if request.method in _SAFE_METHODS:
        return
    action = f"{request.method} {request.url.path}"
    audit_action(
        rt.audit,
        principal.org_id,
        actor,
        action,
        request.headers.get("x-org-id"),
        outcome="denied",
        details={"reason": reason},
    )


def record_failed_change(request: Request, exc: AgentSDKError) -> None:
    """An admitted state-changing request that failed (a missing run, a conflict, a bad body)
    still leaves an audit record, with ``outcome: "failed"``. Successful changes are recorded by
    the core in their own transaction, refusals by ``needs``; this is the rest. Best effort: the
    request has failed already, and a broken audit log must not hide why."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None or request.method in _SAFE_METHODS:
        return
    if isinstance(exc, AuthenticationError | PermissionDenied | QuotaExceeded):
        return
    try:
        audit_action(
            runtime_of(request).audit,
            caller.org_id,
            caller.actor,
            f"{request.method} {request.url.path}",
            None,
            outcome="failed",
            details={"error": exc.code, "message": exc.message},
        )
    except AgentSDKError:
        log.warning("could not audit a failed %s %s", request.method, request.url.path)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AnyCaller = Annotated[Caller, needs(None)]
RunsReader = Annotated[Caller, needs("runs:read")]
RunsWriter = Annotated[Caller, needs("runs:write")]
SessionsReader = Annotated[Caller, needs("sessions:read")]
KeysAdmin = Annotated[Caller, needs("admin:keys")]
OrgsAdmin = Annotated[Caller, needs("admin:orgs")]
AuditAdmin = Annotated[Caller, needs("admin:audit")]
