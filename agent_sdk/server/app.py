"""The HTTP server: ``create_app(settings)`` returns the FastAPI app ``agent-sdk serve`` runs.

The app is an edge: routes parse, call one core service and render. It owns three things of its
own: the lifespan of the Runtime (runs execute on the server's event loop) and of the admission
lane (server/admission.py: run creations are written in groups), the admin-token check,
and the HTTP conventions (problem+json, request ids, body limit, deprecated unversioned paths).

    /health /ready                       probes, no token
    /v1/runs ... /v1/sessions ...        the API (Authorization: Bearer <admin token>)
    /runs ... /sessions ...              the same handlers, deprecated (X-API-Deprecated: true)
    /run/{id}/events/replay              the spec's spelling of /v1/runs/{id}/events/replay
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_sdk._version import __version__
from agent_sdk.config import Settings
from agent_sdk.core.audit_seal import start_sealer
from agent_sdk.core.bootstrap import ensure_bootstrap_key
from agent_sdk.core.redaction import redact_process_logs
from agent_sdk.core.retention_sweep import start_sweeper
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import AgentSDKError
from agent_sdk.server.admission import AdmissionLane
from agent_sdk.server.deps import record_failed_change
from agent_sdk.server.errors import (
    HTTPProblem,
    RequestContext,
    document_problems,
    install_error_handlers,
    render_http_error,
)
from agent_sdk.server.http_limits import HeaderLimit
from agent_sdk.server.request_text import RequestText
from agent_sdk.server.routes import admin, health, runs, schema, sessions
from agent_sdk.server.routes import deletion as deletion_routes
from agent_sdk.server.routes import encryption as encryption_routes
from agent_sdk.server.routes import redaction as redaction_routes
from agent_sdk.server.routes import residency as residency_routes
from agent_sdk.server.routes import retention as retention_routes
from agent_sdk.server.routes import status as status_routes

log = logging.getLogger("agent_sdk.server")

# How long shutdown lets runs in flight on the server's loop finish before closing the store.
SHUTDOWN_GRACE_SECONDS = 10.0


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    shutdown_grace: float = SHUTDOWN_GRACE_SECONDS,
) -> FastAPI:
    """The app. Without ``runtime`` the lifespan builds one from ``settings`` and closes it at
    shutdown; a given runtime is attached to the server's loop but stays the caller's to close."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        unredact = redact_process_logs(settings)
        rt = runtime if runtime is not None else Runtime(settings)
        sweeper: asyncio.Task[None] | None = None
        sealer: asyncio.Task[None] | None = None
        recovery: asyncio.Task[None] | None = None
        # Run creations are written in groups (see agent_sdk.server.admission).
        lane = AdmissionLane(rt.runs, asyncio.get_running_loop())
        try:
            rt.load_agents()
            rt.auth.check_config()
            _bootstrap(rt, settings)
            rt.attach(asyncio.get_running_loop())
            app.state.runtime = rt
            app.state.admissions = lane
            if settings.execution.recovery_enabled:
                await asyncio.to_thread(_recover, rt)
                recovery = _start_recovery_sweep(rt)  # inline only: workers sweep the queue
            sweeper = start_sweeper(rt)  # retention policies, every interval (0: none)
            sealer = start_sealer(rt)  # signs idle audit logs (chain off or 0 s: none)
            yield
        finally:
            for task in (recovery, sweeper, sealer):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            # Refuse new creations, write those waiting, and let their runs be dispatched (the
            # lane announces on the next turn of the loop) before the drain waits for them.
            lane.close()
            await asyncio.sleep(0)
            await _drain(rt, shutdown_grace)
            if runtime is None:
                rt.close(wait=False)
            unredact()

    # The interactive docs answer anyone, so they are served only where asked for (`up` asks
    # by default). Without them the document itself needs a credential: an anonymous client
    # learns nothing beyond the probes, and API clients with a key can still fetch it.
    docs = bool(settings.server.docs_enabled)
    app = _App(
        title="agent-sdk",
        version=__version__,
        description="Runs of AI agents: start them, follow their events, cancel them. "
        "Errors are application/problem+json; lists are cursor-paginated.",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    app.state.on_error = record_failed_change
    install_error_handlers(app)
    # Starlette wraps the last added middleware outermost: RequestContext must see everything,
    # including the 413 answers of the body limit and the 431 of the header limit. The text
    # check reads bodies, so it sits inside the body limit.
    app.add_middleware(RequestText)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    # The real cap on heads is in the protocol (server/http_protocol.py); this one holds when
    # the app runs under a server other than ours.
    app.add_middleware(
        HeaderLimit,
        max_bytes=settings.server.max_header_bytes,
        max_count=settings.server.max_header_count,
    )
    app.add_middleware(RequestContext)

    pairs, spec = _routers()
    app.include_router(health.router())
    if not docs:
        app.include_router(schema.router())
    for current, deprecated in pairs:
        app.include_router(current, prefix="/v1")
        app.include_router(deprecated, include_in_schema=False)
    app.include_router(spec)
    return app


@functools.cache
def _routers() -> tuple[tuple[tuple[APIRouter, APIRouter], ...], APIRouter]:
    """The API's routers: for each module, the one at /v1 and the one at the old unversioned
    paths; then the spec's replay path.

    Building them is most of what create_app costs (FastAPI has pydantic analyse every
    handler's signature, twice over with the old paths), and nothing in them depends on the
    settings, so a process builds them once and every app it creates includes the same ones.
    Including does not change a router: FastAPI keeps what differs per app (prefix, schema
    visibility) in the including app."""
    modules = (
        runs,
        sessions,
        admin,
        status_routes,
        residency_routes,
        deletion_routes,
        encryption_routes,
        retention_routes,
        redaction_routes,
    )
    pairs = tuple((module.router(), module.router(DeprecatedRoute)) for module in modules)
    return pairs, runs.spec_router(DeprecatedRoute)


def _bootstrap(rt: Runtime, settings: Settings) -> None:
    """A database whose default org has no key gets the bootstrap key now."""
    token, created = ensure_bootstrap_key(rt)
    if created:
        path = settings.admin_token_path
        sys.stderr.write(
            f"agent-sdk: created the bootstrap API key; it is in {path} (mode 0600).\n"
            f"agent-sdk: use it with: export AGENT_SDK_API_KEY=$(cat {path})\n"
        )


def _recover(rt: Runtime) -> None:
    """Runs a dead server or worker left behind: queued runs get their job (queue mode) or
    start here (inline), runs left running are taken over (see agent_sdk.core.recovery)."""
    from agent_sdk.core.recovery import recover, report

    try:
        queue = rt.queue if rt.settings.execution.mode == "queue" else None
        found = recover(rt, queue, at_start=True)
    except AgentSDKError as exc:
        # Serve anyway: /ready reports the broken queue, and workers recover when they start.
        log.warning("recovery skipped: %s", exc.message)
        return
    report(found, "recovery")


def _start_recovery_sweep(rt: Runtime) -> asyncio.Task[None] | None:
    """Inline, nothing else takes over the runs of a server that died: sweep once a lease and
    a beat from now (every run of a process that died just before this one started is stale by
    then), and every three leases after that (another server on the store that dies)."""
    if rt.settings.execution.mode == "queue":
        return None
    from agent_sdk.core.recovery import sweep

    lease = rt.settings.worker.lease
    return asyncio.create_task(sweep(rt, None, first=lease * 4 / 3, every=3 * lease))


async def _drain(rt: Runtime, grace: float) -> None:
    """Let the runs executing on this loop finish (they would lose their store otherwise). Polls,
    because Executor.wait_idle blocks, and blocking here would stop the very loop they run on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while rt.executor.in_flight() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if left := rt.executor.in_flight():
        # Better a recorded cancellation than a run left `running` by a process that is gone.
        log.warning("shutting down: cancelling %d run(s) still in flight", left)
        rt.executor.cancel_all()
        deadline = loop.time() + 2
        while rt.executor.in_flight() and loop.time() < deadline:
            await asyncio.sleep(0.01)


class _App(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with every problem answer an operation can give declared under
        application/problem+json (see agent_sdk.server.errors.document_problems)."""
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()  # also cached in self.openapi_schema, edited in place here
        document_problems(schema)
        return schema


class DeprecatedRoute(APIRoute):
    """A route at an unversioned (old) path. It asks RequestContext to add ``X-API-Deprecated``,
    ``Deprecation`` and a ``Link`` to the /v1 successor to the answer, error answers included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def deprecated(request: Request) -> Response:
            path = request.scope.get("raw_path") or request.url.path.encode()
            path = path.decode("latin-1") if isinstance(path, bytes) else str(path)
            if path.startswith("/run/"):
                path = "/runs/" + path[len("/run/") :]
            request.state.successor_path = "/v1" + path
            return await handler(request)

        return deprecated


def _body_too_large(limit: int) -> HTTPProblem:
    return HTTPProblem(
        413,
        f"request body is larger than {limit} bytes",
        hint="the limit is the server's AGENT_SDK_MAX_BODY_BYTES",
    )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: at once when Content-Length says so,
    and while reading when a chunked body runs over. Pure ASGI: BaseHTTPMiddleware would wrap
    (and slow down) every response, streams included."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                problem: HTTPProblem | None = None
                if not value.isdigit():
                    problem = HTTPProblem(400, "invalid Content-Length header")
                elif int(value) > self.max_bytes:
                    problem = _body_too_large(self.max_bytes)
                if problem is not None:
                    response = await render_http_error(Request(scope), problem)
                    # The body was not read, so the connection cannot carry another request.
                    response.headers["Connection"] = "close"
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException, so FastAPI lets it through its body parsing untouched
                    # and the error handlers render it as a problem.
                    raise _body_too_large(self.max_bytes)
            return message

        await self.app(scope, limited, send)


__all__ = ["BodyLimit", "DeprecatedRoute", "create_app"]
