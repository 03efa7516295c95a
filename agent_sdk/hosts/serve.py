"""The ``serve`` host: the HTTP server of a deployment.

No state file, and it refuses to start on an unmigrated database (migrations run as their own
step of a release, not as a side effect of a pod starting). The socket, the app and uvicorn are
wired here; ``up`` (:mod:`agent_sdk.hosts.up`) runs the same server with its own preparation.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict
from agent_sdk.hosts import check_agents

if TYPE_CHECKING:
    from agent_sdk.config import Settings


def server_modules() -> tuple[Any, Any, Any]:
    try:
        import uvicorn

        from agent_sdk.server.app import create_app
        from agent_sdk.server.listener import server_config
    except ImportError as exc:
        raise AgentSDKError(
            f"the server is not installed ({exc.name or exc} is missing)",
            hint="pip install 'agent-sdk[server]'",
        ) from None
    return uvicorn, create_app, server_config


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves: a taken port is one clear error, not a log line
    from uvicorn, and there is no gap between checking the port and using it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BackendUnavailable(
                f"port {port} on {host} is already in use",
                hint="pick another port with --port, or stop the program listening there",
            ) from None
        raise BackendUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run(settings: Settings, sock: socket.socket, host: str, port: int) -> None:
    uvicorn, create_app, server_config = server_modules()
    # One configuration for every way the server starts (proxy headers off, heads capped).
    config = server_config(create_app(settings), settings, host=host, port=port)
    # SIGTERM stops the server as Ctrl-C does (a KeyboardInterrupt), so the clean-up in the
    # callers' ``finally`` runs instead of the process dying where it stands.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when the app fails to start; it logged why
        if exc.code not in (None, 0):
            raise BackendUnavailable(
                "the server failed to start (see the log above)", hint="rerun with --debug"
            ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings, say: Callable[[str], None]) -> None:
    """Run the server until SIGTERM or Ctrl-C; ``say`` tells the operator what happens."""
    from agent_sdk.core.bootstrap import pending_migrations

    server_modules()
    check_agents(settings)
    if pending := pending_migrations(settings):
        raise Conflict(
            f"the database has {len(pending)} pending migration(s); the server will not "
            "start on an old schema",
            hint="agent-sdk db migrate",
        )
    sock = bind(settings.host, settings.port)
    try:
        bound = sock.getsockname()[1]
        say(f"agent-sdk serving on http://{settings.host}:{bound}")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM
            run(settings, sock, settings.host, bound)
        say("stopped")
    finally:
        sock.close()
