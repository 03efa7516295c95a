"""The ``up`` host: the embedded server of one machine.

It migrates the local database, makes sure the bootstrap API key exists, and writes
``server.json`` ({url, pid}) to the data directory while it runs: the CLI of this machine reads
it (:func:`read_server_state`) to send its commands to the server instead of opening the
database itself. The server itself is the one of :mod:`agent_sdk.hosts.serve`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict
from agent_sdk.hosts import check_agents
from agent_sdk.hosts.serve import bind, run, server_modules

if TYPE_CHECKING:
    from agent_sdk.config import Settings


def read_server_state(path: Path) -> dict[str, Any] | None:
    """The ``{"url", "pid"}`` written by ``agent-sdk up``, if that process still lives."""
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
        url = str(state["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(pid):
        return None
    return {"url": url, "pid": pid}


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    except OSError:
        return False
    return True


def client_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"  # a wildcard address is not something a client can connect to
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write_state(path: Path, url: str) -> None:
    from agent_sdk.private_files import ensure_private_dir, ensure_private_file

    ensure_private_dir(path.parent)
    tmp = ensure_private_file(path.with_name(f".{path.name}.{os.getpid()}.tmp"))
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    os.replace(tmp, path)  # readers never see half a file


def remove_state(path: Path) -> None:
    """Remove the state file if it is still ours (another `up` may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def local_defaults(settings: Settings) -> Settings:
    """What `up` changes for a developer's own machine: the interactive API docs are on unless
    AGENT_SDK_DOCS_ENABLED (or a config file) says otherwise. `serve` keeps them off."""
    if settings.docs_enabled is None:
        return settings.replace(docs_enabled=True)
    return settings


def up(settings: Settings, database: str, say: Callable[[str], None]) -> None:
    """Run the local server in the foreground until Ctrl-C or SIGTERM. ``settings`` are the
    CLI's, before :func:`local_defaults`; ``database`` names the database in the banner; ``say``
    tells the operator what happens."""
    settings = local_defaults(settings)
    running = read_server_state(settings.server_state_path)
    if running is not None:
        raise Conflict(
            f"a server already runs at {running['url']} (pid {running['pid']})",
            hint="the CLI on this machine already uses it; stop it first to start another",
        )
    server_modules()  # fail before touching anything when the extra is missing
    check_agents(settings)  # a bad agents module: one error line, before the banner
    sock = bind(settings.host, settings.port)
    state_path = settings.server_state_path
    try:
        from agent_sdk.core.bootstrap import prepare_local_server

        prepared = prepare_local_server(settings)
        if prepared.applied:
            say(f"applied {len(prepared.applied)} migration(s)")
        token, created = prepared.token, prepared.token_created
        url = client_url(settings.host, sock.getsockname()[1])
        write_state(state_path, url)
        token_file = settings.admin_token_path
        say(f"agent-sdk server running at {url}  (Ctrl-C to stop)")
        say(f"  database: {database}")
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
            run(settings, sock, settings.host, sock.getsockname()[1])
        except KeyboardInterrupt:
            pass  # Ctrl-C is how `up` is meant to stop
        say("stopped")
    finally:
        sock.close()
        remove_state(state_path)
