"""``agent-sdk keys create|list|show|rotate|revoke``: the API keys of the org.

A token is printed once, by ``create`` and ``rotate``, to stdout (a warning goes to stderr);
nothing can show it again. Listings show the public prefix and the last four characters.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from agent_sdk.cli.context import (
    CLIContext,
    Cursor,
    OutputFormat,
    PageSize,
    command,
    current,
    sub_app,
)
from agent_sdk.cli.output import Column, key_values, out, render_one, render_page, say, when
from agent_sdk.errors import InvalidInput
from agent_sdk.ids import utcnow
from agent_sdk.records import ApiKey
from agent_sdk.times import parse_duration, resolve_until

app = sub_app(help="API keys of the org: create, rotate, revoke.", no_args_is_help=True)

EXIT_DECLINED = 3
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def key_status(row: dict[str, Any], now: str | None = None) -> str:
    if row.get("revoked_at"):
        return "revoked"
    expires = row.get("expires_at")
    if expires and expires <= (now or utcnow()):
        return "expired"
    return "active"


def _display(row: dict[str, Any]) -> str:
    return f"{row.get('prefix_display', '')}…{row.get('last4', '')}"


def _limit(row: dict[str, Any]) -> str | None:
    rate = row.get("rate_per_second")
    if rate is None:
        return None
    burst = row.get("burst")
    return f"{rate:g}/s" + (f", burst {burst}" if burst is not None else "")


KEY_COLUMNS = [
    Column("ID", "id"),
    Column("NAME", "name", 24),
    Column("KEY", _display),
    Column("ROLE", "role"),
    Column("STATUS", key_status),
    Column("CREATED", lambda r: when(r.get("created_at"))),
    Column("EXPIRES", lambda r: when(r.get("expires_at"))),
    Column("LAST USED", lambda r: when(r.get("last_used_at"))),
]
KEY_FIELDS = [
    Column("id", "id"),
    Column("name", "name"),
    Column("key", _display),
    Column("status", key_status),
    Column("role", "role"),
    Column("scopes", lambda r: ", ".join(r.get("scopes") or []) or None),
    Column("created", lambda r: when(r.get("created_at"))),
    Column("created by", "created_by"),
    Column("expires", lambda r: when(r.get("expires_at"))),
    Column("rotated", lambda r: when(r.get("rotated_at"))),
    Column("revoked", lambda r: when(r.get("revoked_at"))),
    Column("last used", lambda r: when(r.get("last_used_at"))),
    Column("rate limit", _limit),
    Column("allowed IPs", lambda r: ", ".join(r.get("ip_allowlist") or []) or None),
]


# -- option parsing -------------------------------------------------------------------------------


def _expires(text: str | None) -> str | None:
    """A duration from now (``30d``) or an ISO time, checked by the one time parser (the core
    then refuses a time that is not in the future)."""
    return None if text is None else resolve_until(text, "--expires")


def _rate(text: str | None) -> float | None:
    """``10/s``, ``600/m``, ``5`` (per second) -> requests per second."""
    if text is None:
        return None
    match = _RATE.fullmatch(text.strip().lower())
    if not match:
        raise typer.BadParameter(
            f"{text!r} is not a rate; use e.g. 10/s or 600/m", param_hint="'--rate'"
        )
    return float(match[1]) / _PER[match[2] or "s"]


def _split(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also take comma-separated lists."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# -- output ---------------------------------------------------------------------------------------


def render_token(ctx: CLIContext, key: ApiKey, token: str, what: str) -> None:
    """The key and its token, once: the token on a line of its own (table), or beside the key
    (``{"key": ..., "token": ...}``)."""
    fmt = ctx.output
    if fmt is OutputFormat.table:
        out(key_values(key.to_dict(), KEY_FIELDS))
        say(f"\n{what}: the token below is shown only this once; store it now")
        say("(e.g. pipe it to `agent-sdk auth login --server URL`)")
        out(token)
        return
    say(f"{what}: the token is shown only this once; store it now")
    render_one({"key": key, "token": token}, [], fmt)


def _interactive() -> bool:
    return sys.stdin.isatty()


def confirm(ctx: CLIContext, question: Callable[[], str], *, yes: bool, refused: str) -> None:
    """Go ahead with a destructive action: ``--yes``, or a "y" at a prompt on a terminal.
    Without a terminal (or with --no-input) and without --yes it is a usage error; a "no" at
    the prompt exits 3. ``question`` is built only when there is someone to ask."""
    if yes:
        return
    if ctx.options.no_input or not _interactive():
        why = "--no-input was given" if ctx.options.no_input else "there is no terminal to ask on"
        raise InvalidInput(f"{refused} needs confirmation and {why}", hint="pass --yes (-y)")
    if not typer.confirm(question(), default=False, err=True):
        say(f"declined: {refused} was not done")
        raise typer.Exit(EXIT_DECLINED)


# -- commands -------------------------------------------------------------------------------------


@command(app, "create")
def create(
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="What the key is for.")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            metavar="ROLE",
            help="viewer, operator or admin (ignored for scopes you list).",
        ),
    ] = "viewer",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="Exact scopes instead of the role's (runs:read, runs:write, ...); repeatable.",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", metavar="WHEN", help="30d, 12h, ... from now, or an ISO time."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", metavar="N/s", help="Rate limit, e.g. 10/s or 600/m."),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option("--burst", metavar="N", min=1, help="Requests allowed at once past --rate."),
    ] = None,
    allow_ip: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-ip",
            metavar="CIDR",
            help="Accept the key only from these networks; repeatable.",
        ),
    ] = None,
) -> None:
    """Create an API key of the org and print its token, once.

    Example: agent-sdk keys create --name ci --role operator --expires 90d --rate 10/s --burst 20
    """
    ctx = current()
    key, token = ctx.backend.create_key(
        name=name,
        role=role,
        scopes=_split(scope),
        expires_at=_expires(expires),
        rate_per_second=_rate(rate),
        burst=burst,
        ip_allowlist=_split(allow_ip),
    )
    render_token(ctx, key, token, f"created key {key.id}")


@command(app, "list")
def list_(
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> None:
    """List the org's keys, newest first (prefix and last four characters only).

    Example: agent-sdk keys list --org acme
    """
    ctx = current()
    page = ctx.backend.list_keys(limit=limit, cursor=cursor)
    render_page(page, KEY_COLUMNS, ctx.output, empty="no API keys")


@command(app, "show")
def show(key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key.")]) -> None:
    """Show one key.

    Example: agent-sdk keys show 0Nq3xP1fK7aBcDeF
    """
    ctx = current()
    render_one(ctx.backend.get_key(key_id), KEY_FIELDS, ctx.output)


@command(app, "rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key.")],
    grace: Annotated[
        str,
        typer.Option(
            "--grace", metavar="DURATION", help="How long the old token keeps working (0, 1h, ...)."
        ),
    ] = "0",
) -> None:
    """Give a key a new token; the old one works for the grace period.

    Example: agent-sdk keys rotate 0Nq3xP1fK7aBcDeF --grace 1h
    """
    ctx = current()
    seconds = parse_duration(grace, "--grace")
    key, token = ctx.backend.rotate_key(key_id, grace_seconds=seconds)
    until = f"; the old token works for {grace.strip()} more" if seconds else ""
    render_token(ctx, key, token, f"rotated key {key.id}{until}")


@command(app, "revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Revoke a key at once; requests with it fail from now on.

    Example: agent-sdk keys revoke 0Nq3xP1fK7aBcDeF --yes
    """
    ctx = current()

    def question() -> str:
        key = ctx.backend.get_key(key_id)  # a typo fails here, before anyone is asked
        return f"Revoke API key {key.id} ({key.name}, {key.display})? It stops working at once"

    confirm(ctx, question, yes=yes, refused=f"revoking key {key_id}")
    key = ctx.backend.revoke_key(key_id)
    say(f"revoked key {key.id}")
    render_one(key, KEY_FIELDS, ctx.output)
