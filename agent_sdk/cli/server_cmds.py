"""``agent-sdk up`` (the embedded server of one machine) and ``agent-sdk serve`` (deployment).

``up`` migrates the local database, makes sure the bootstrap API key exists, and writes
``server.json`` ({url, pid}) to the data directory while it runs: the CLI of this machine reads
it to send its commands to the server instead of opening the database itself. ``serve`` is the
same server for a deployment: no state file, and it refuses to start on an unmigrated database
(migrations run as their own step of a release, not as a side effect of a pod starting).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_sdk.cli.agents_check import check_agents
from agent_sdk.cli.context import (
    CLIContext,
    command,
    current,
    database_label,
    read_server_state,
    sub_app,
)
from agent_sdk.cli.output import say
from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict

if TYPE_CHECKING:
    from agent_sdk.config import Settings

HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        metavar="HOST",
        help="Interface to listen on [default: 127.0.0.1; env: AGENT_SDK_HOST].",
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        "-p",
        metavar="PORT",
        min=0,
        max=65535,
        help="Port [default: 8765; env: AGENT_SDK_PORT].",
    ),
]
AgentsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--agents",
        metavar="MODULE",
        help="Python module defining agents (e.g. myapp.agents); repeatable "
        "[env: AGENT_SDK_AGENTS].",
    ),
]


def _configure(
    ctx: CLIContext, host: str | None, port: int | None, agents: list[str] | None
) -> None:
    if host is not None:
        ctx.extra_flags["host"] = host
    if port is not None:
        ctx.extra_flags["port"] = port
    if agents:
        ctx.extra_flags["agents"] = list(agents)


def _server_modules() -> tuple[Any, Any, Any]:
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


def _bind(host: str, port: int) -> socket.socket:
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


def _client_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"  # a wildcard address is not something a client can connect to
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _write_state(path: Path, url: str) -> None:
    from agent_sdk.private_files import ensure_private_dir, ensure_private_file

    ensure_private_dir(path.parent)
    tmp = ensure_private_file(path.with_name(f".{path.name}.{os.getpid()}.tmp"))
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    os.replace(tmp, path)  # readers never see half a file


def _remove_state(path: Path) -> None:
    """Remove the state file if it is still ours (another `up` may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _run(settings: Settings, sock: socket.socket, host: str, port: int) -> None:
    uvicorn, create_app, server_config = _server_modules()
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


def local_defaults(settings: Settings) -> Settings:
    """What `up` changes for a developer's own machine: the interactive API docs are on unless
    AGENT_SDK_DOCS_ENABLED (or a config file) says otherwise. `serve` keeps them off."""
    if settings.docs_enabled is None:
        return settings.replace(docs_enabled=True)
    return settings


app = sub_app()


@command(app, "up", output=False)
def up(host: HostOption = None, port: PortOption = None, agents: AgentsOption = None) -> None:
    """Run the local server in the foreground until Ctrl-C.

    The CLI on this machine then sends its commands to it automatically. It also serves the
    interactive API docs at /docs (AGENT_SDK_DOCS_ENABLED=false turns them off).

    Example: agent-sdk up --port 8765 --agents myapp.agents
    """
    ctx = current()
    _configure(ctx, host, port, agents)
    settings = local_defaults(ctx.settings)
    running = read_server_state(settings.server_state_path)
    if running is not None:
        raise Conflict(
            f"a server already runs at {running['url']} (pid {running['pid']})",
            hint="the CLI on this machine already uses it; stop it first to start another",
        )
    _server_modules()  # fail before touching anything when the extra is missing
    check_agents(settings)  # a bad agents module: one error line, before the banner
    sock = _bind(settings.host, settings.port)
    state_path = settings.server_state_path
    try:
        from agent_sdk.core.bootstrap import prepare_local_server

        prepared = prepare_local_server(settings)
        if prepared.applied:
            say(f"applied {len(prepared.applied)} migration(s)")
        token, created = prepared.token, prepared.token_created
        url = _client_url(settings.host, sock.getsockname()[1])
        _write_state(state_path, url)
        token_file = settings.admin_token_path
        say(f"agent-sdk server running at {url}  (Ctrl-C to stop)")
        say(f"  database: {database_label(settings)}")
        if settings.docs_enabled:
            say(f"  API docs: {url}/docs")
        say("  The agent-sdk CLI on this machine now uses this server automatically.")
        if created and token:
            say(f"  bootstrap API key (shown this once; kept in {token_file}):")
            say(f"    {token}")
        say("  Other clients:")
        say(f"    export AGENT_SDK_SERVER_URL={url}")
        if token:
            say(f"    export AGENT_SDK_API_KEY=$(cat {token_file})")
        else:
            say("    export AGENT_SDK_API_KEY=<an API key of this server>")
        try:
            _run(settings, sock, settings.host, sock.getsockname()[1])
        except KeyboardInterrupt:
            pass  # Ctrl-C (or SIGTERM) is how `up` is meant to stop
        say("stopped")
    finally:
        sock.close()
        _remove_state(state_path)


@command(app, "serve", output=False)
def serve(host: HostOption = None, port: PortOption = None, agents: AgentsOption = None) -> None:
    """Run the server for a deployment (no state file; needs a migrated database).

    Example: AGENT_SDK_HOST=0.0.0.0 agent-sdk serve
    """
    from agent_sdk.core.bootstrap import pending_migrations

    ctx = current()
    _configure(ctx, host, port, agents)
    settings = ctx.settings
    _server_modules()
    check_agents(settings)
    if pending := pending_migrations(settings):
        raise Conflict(
            f"the database has {len(pending)} pending migration(s); the server will not "
            "start on an old schema",
            hint="agent-sdk db migrate",
        )
    sock = _bind(settings.host, settings.port)
    try:
        bound = sock.getsockname()[1]
        say(f"agent-sdk serving on http://{settings.host}:{bound}")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM
            _run(settings, sock, settings.host, bound)
        say("stopped")
    finally:
        sock.close()
