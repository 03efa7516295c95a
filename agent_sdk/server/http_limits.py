"""Caps on the request head: ``AGENT_SDK_MAX_HEADER_BYTES`` (request line and header fields)
and ``AGENT_SDK_MAX_HEADER_COUNT``, answered with ``431 Request Header Fields Too Large``.

The protection is in the HTTP protocol (:mod:`agent_sdk.server.http_protocol`), which counts a
head while it arrives. :class:`HeaderLimit` is the same check as ASGI middleware, for the app
run by another server; by the time it runs, the server has already read the whole head.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_sdk.server.errors import HTTPProblem, render_http_error

CODE = "headers_too_large"
TITLE = "Request Header Fields Too Large"
HINT = "the limits are the server's AGENT_SDK_MAX_HEADER_BYTES and AGENT_SDK_MAX_HEADER_COUNT"


def too_many_bytes(limit: int) -> str:
    return f"the request line and headers are larger than {limit} bytes"


def too_many_fields(limit: int) -> str:
    return f"the request has more than {limit} header fields"


class HeaderLimit:
    """The same caps as pure ASGI middleware: a request whose headers are over them gets the
    431 problem without reaching a route."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_count: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            detail: str | None = None
            if len(headers) > self.max_count:
                detail = too_many_fields(self.max_count)
            elif sum(len(n) + len(v) + 4 for n, v in headers) > self.max_bytes:
                detail = too_many_bytes(self.max_bytes)
            if detail is not None:
                problem = HTTPProblem(431, detail, code=CODE, hint=HINT)
                response = await render_http_error(Request(scope), problem)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


__all__ = ["CODE", "HINT", "TITLE", "HeaderLimit", "too_many_bytes", "too_many_fields"]
