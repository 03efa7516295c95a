"""``/openapi.json`` for callers with a credential, when the public docs are off.

With ``AGENT_SDK_DOCS_ENABLED`` off (the default of ``serve``) FastAPI serves neither the docs
nor the document; this route serves the document to any authenticated caller, whatever its
scopes, so client generators and API tests work with a key while an anonymous client gets the
same 401 as on every other route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_sdk.server.deps import Caller, needs
from agent_sdk.server.responses import JSONResponse


async def openapi(
    request: Request,
    who: Annotated[Caller, needs(None, residency=False)],  # any credential; the API has no region
) -> Response:
    return JSONResponse(request.app.openapi())


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    r.get("/openapi.json")(openapi)
    return r


__all__ = ["router"]
