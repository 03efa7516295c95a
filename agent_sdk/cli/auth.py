"""``agent-sdk auth login|logout|status|token``: the credential the CLI uses for a server.

A key is read from stdin (when piped) or a hidden prompt, never from a flag value, where it
would land in shell history and ``ps``. Where it is kept, and the order of lookup, is
:mod:`agent_sdk.cli.credentials`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_sdk.cli import credentials as creds
from agent_sdk.cli.context import (
    CLIContext,
    command,
    current,
    no_credential,
    server_target,
    sub_app,
)
from agent_sdk.cli.output import Column, render_one, say
from agent_sdk.config import api_key_in_env
from agent_sdk.errors import AgentSDKError, AuthenticationError, InvalidInput
from agent_sdk.masking import mask_url

if TYPE_CHECKING:
    from agent_sdk.records import Principal

app = sub_app(help="Log in to a server, and show the credential in use.", no_args_is_help=True)

STATUS_FIELDS = [
    Column("server", lambda r: r.get("server") or "(local database)"),
    Column("credential", "source"),
    Column("from", "where"),
    Column("key", "key"),
    Column("subject", "subject"),
    Column("org", "org_id"),
    Column("scopes", lambda r: ", ".join(r.get("scopes") or []) or None),
    Column("keyring", lambda r: "available" if r.get("keyring") else "not available"),
    Column("error", "error"),
]


def _login_url(ctx: CLIContext) -> str:
    """The server ``login`` and ``logout`` act on: --server / a configured http backend, else
    the server `agent-sdk up` runs here, else the configured server URL."""
    if ctx.options.local:
        raise InvalidInput(
            "auth login and logout store keys for servers; --local does not apply",
            hint="give --server URL",
        )
    settings = ctx.settings
    if settings.client.backend == "http":
        return settings.client.server_url
    from agent_sdk.hosts.up import read_server_state

    state = read_server_state(settings.server_state_path)
    return str(state["url"]) if state is not None else settings.client.server_url


def _read_key(ctx: CLIContext, url: str) -> str:
    if sys.stdin.isatty():
        if ctx.options.no_input:
            raise InvalidInput(
                "no key to read: stdin is a terminal and --no-input forbids a prompt",
                hint="pipe the key: agent-sdk auth login < keyfile",
            )
        import getpass

        text = getpass.getpass(f"API key for {mask_url(url)}: ")
    else:
        text = sys.stdin.read()
    token = text.strip()
    if not token:
        raise InvalidInput("no key given", hint="pipe the key on stdin, or type it at the prompt")
    if any(c.isspace() for c in token):
        raise InvalidInput("the key must be one word on one line")
    return token


def _whoami(ctx: CLIContext, url: str, token: str) -> Principal:
    from agent_sdk.backend.http import HttpBackend

    backend = HttpBackend(ctx.settings.replace(server_url=url), api_key=token)
    try:
        return backend.whoami()
    finally:
        backend.close()


def _identity(principal: Principal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "org_id": principal.org_id,
        "scopes": sorted(principal.scopes),
        "kind": principal.kind,
        "key_id": principal.key_id,
    }


@command(app, "login")
def login() -> None:
    """Check an API key with the server, then store it for that server.

    The key is read from stdin when piped, else from a hidden prompt. It goes to the OS
    keyring, or to a 0600 file in the config directory where no keyring exists.

    Example: agent-sdk auth login --server https://agents.example.com < key.txt
    """
    ctx = current()
    url = _login_url(ctx)
    token = _read_key(ctx, url)
    principal = _whoami(ctx, url, token)  # nothing is stored unless the server accepts it
    problem = creds.keyring_set(url, token)
    if problem is None:
        stored, where = creds.KEYRING, f"OS keyring, service {creds.SERVICE!r}"
        creds.mark_keyring(url)  # the index entry replaces an older key in the file
    else:
        path = creds.file_set(url, token)
        stored, where = creds.FILE, str(path)
        say(f"warning: {problem}; the key is stored in {path} (mode 0600) instead")
    say(f"logged in to {mask_url(url)} as {principal.subject} (org {principal.org_id})")
    if api_key_in_env():
        say(f"note: {creds.ENV_VAR} is set and is used instead while it is")
    info = {"server": mask_url(url), "source": stored, "where": where, **_identity(principal)}
    render_one(info, [STATUS_FIELDS[0], *STATUS_FIELDS[1:3], *STATUS_FIELDS[4:7]], ctx.output)


@command(app, "logout")
def logout() -> None:
    """Remove the stored key of a server (keyring and file).

    Example: agent-sdk auth logout --server https://agents.example.com
    """
    ctx = current()
    url = _login_url(ctx)
    in_file = creds.file_get(url) is not None
    in_keyring = creds.keyring_delete(url)
    creds.file_delete(url)  # the key, or the note that it is in the keyring
    removed = [name for name, done in (("keyring", in_keyring), ("file", in_file)) if done]
    if removed:
        say(f"removed the key of {mask_url(url)} from the {' and the '.join(removed)}")
    else:
        say(f"no key stored for {mask_url(url)}")
    if api_key_in_env():
        say(f"note: {creds.ENV_VAR} is still set and still used")


@command(app, "status")
def status() -> None:
    """Show which credential commands use, where it comes from, and who it is.

    Sources, first found wins: AGENT_SDK_API_KEY, the OS keyring, the credentials file, the
    key of the server `agent-sdk up` runs here. The secret itself is never shown.

    Example: agent-sdk auth status -o json
    """
    ctx = current()
    settings = ctx.settings
    url, up_url = server_target(settings)
    shown = mask_url(url) if url is not None else None
    info: dict[str, Any] = {"server": shown, "keyring": creds.keyring_available()}
    failure: AgentSDKError | None = None
    if url is None:
        info.update(source="local", where=str(ctx.settings.data_dir))
        try:
            info.update(_identity(ctx.backend.whoami()))
        except AgentSDKError as exc:
            failure = exc
    else:
        found = creds.find(settings, url, up_url)
        if found is None:
            info.update(source=None, where=None)
            failure = no_credential(settings, url)  # or "cannot reach", when the server is down
        else:
            info.update(found.describe())
            try:
                info.update(_identity(_whoami(ctx, url, found.token)))
            except AgentSDKError as exc:
                failure = exc
    fields = STATUS_FIELDS
    if failure is not None:
        info["error"] = failure.message
    else:
        fields = fields[:-1]  # no "error: -" line when all is well
    render_one(info, fields, ctx.output)
    if failure is not None:
        raise failure


@command(app, "token", output=False)
def token(
    bootstrap: Annotated[
        bool,
        typer.Option(
            "--bootstrap",
            help="Print the bootstrap admin key this machine's server created "
            "(<data dir>/admin-token), wherever commands go.",
        ),
    ] = False,
) -> None:
    """Print the credential commands use, and nothing else, for $(...) (exit 4 when none).

    With `agent-sdk up` running here that is its bootstrap admin key, read from the data
    directory (AGENT_SDK_DATA_DIR, else $XDG_DATA_HOME/agent-sdk).

    Example: export AGENT_SDK_API_KEY=$(agent-sdk auth token)
    """
    ctx = current()
    settings = ctx.settings
    if bootstrap:
        typer.echo(_bootstrap_token(settings.admin_token_path))
        return
    if settings.client.api_key:  # it wins for every server, so it is the one in use
        typer.echo(settings.client.api_key)
        return
    url, up_url = server_target(settings)
    if url is None:
        raise AuthenticationError(
            "commands go to the local database, which needs no credential",
            hint="start `agent-sdk up`, give --server URL for the key of a server, or use "
            "--bootstrap for the key a server on this machine created",
        )
    found = creds.find(settings, url, up_url)
    if found is None:
        raise AuthenticationError(
            f"no credential for the server at {mask_url(url)}",
            hint=f"run `agent-sdk auth login --server {mask_url(url)}`, or set {creds.ENV_VAR}",
        )
    typer.echo(found.token)


def _bootstrap_token(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthenticationError(
            f"no bootstrap key in {path}",
            hint="`agent-sdk up` (or the first `agent-sdk serve` on an empty database) creates "
            "it; check AGENT_SDK_DATA_DIR / XDG_DATA_HOME point where that server ran",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthenticationError(f"cannot read the bootstrap key in {path}: {exc}") from None
    value = text.strip()
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        # Printed into $(...) and an Authorization header: one clean word or nothing.
        raise AuthenticationError(
            f"{path} does not hold one API key",
            hint="it was edited or damaged; create a new admin key with `agent-sdk keys create`",
        )
    return value
