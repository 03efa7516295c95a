"""Dependencies of the API routes: the runtime, the bearer token and the org of a request.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a thread pool,
which would cost a thread hop on every request for checks that take microseconds.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.tokens import verify_admin_token
from agent_sdk.errors import AuthenticationError
from agent_sdk.server.errors import HTTPProblem

ORG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# auto_error=False: a missing or non-Bearer header must give our 401 problem (with the same
# wording for every kind of failure), not FastAPI's own 403. The scheme also documents the
# security requirement in /openapi.json.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token: `agent-sdk up` writes it to a 0600 file in the data directory.",
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Refuse the request unless it carries the admin token. Missing, malformed and wrong tokens
    get the same answer, so a caller learns nothing about which part was wrong."""
    digest: str | None = request.app.state.admin_token_digest
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token or not verify_admin_token(digest, token):
        raise AuthenticationError(
            "missing or invalid credentials",
            hint="send 'Authorization: Bearer <token>'; the CLI reads it from AGENT_SDK_API_KEY",
        )


async def get_org_id(
    request: Request,
    _auth: Annotated[None, Depends(require_token)],
    x_org_id: Annotated[
        str | None,
        Header(
            alias="X-Org-Id",
            description="the org the request acts in (default: the server's AGENT_SDK_ORG)",
        ),
    ] = None,
) -> str:
    """The org of the request; depends on the token check so an anonymous caller cannot probe
    which orgs exist."""
    org_id = settings_of(request).org_id if x_org_id is None else x_org_id
    if not ORG_ID.fullmatch(org_id):
        raise HTTPProblem(
            400,
            "invalid X-Org-Id header",
            hint="an org id is 1-64 letters, digits, '_' or '-'",
        )
    runtime_of(request).orgs.get(org_id)  # NotFound (404) for an org that does not exist
    return org_id


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
OrgId = Annotated[str, Depends(get_org_id)]
