"""``agent-sdk orgs keys list|rotate|rewrap|destroy``: the encryption-at-rest keys of the org.

The org is the one commands act in (``--org``, else the credential's own); on a server they need
``admin:orgs``. Nothing here ever prints key material: listings show ids, states and times.

A rotation takes effect at once for new writes; ``rewrap`` then moves the rows written before
(and plaintext rows from before encryption was enabled) to the new key, batch by batch, while the
deployment keeps running. ``destroy`` is crypto-shredding: the org's encrypted data can never be
read again, so it asks first (``--yes`` to skip the question).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.keys import confirm
from agent_sdk.cli.output import Column, render_list, render_one, say, when
from agent_sdk.errors import DecryptionFailed

app = sub_app(
    help="Encryption keys of the org: list, rotate, rewrap, destroy.", no_args_is_help=True
)

KEY_COLUMNS = [
    Column("ID", "id"),
    Column("STATE", "state"),
    Column("CREATED", lambda r: when(r.get("created_at"))),
    Column("RETIRED", lambda r: when(r.get("retired_at"))),
    Column("DESTROYED", lambda r: when(r.get("destroyed_at"))),
    Column("MASTER KEY", "master_key_id"),
]
KEY_FIELDS = [
    Column("id", "id"),
    Column("org", "org_id"),
    Column("state", "state"),
    Column("created", lambda r: when(r.get("created_at"))),
    Column("master key", "master_key_id"),
]
REWRAP_FIELDS = [
    Column("org", "org_id"),
    Column("active key", "key_id"),
    Column("rows examined", "rows"),
    Column("values re-encrypted", "rewrapped"),
    Column("unreadable (destroyed key)", "unreadable"),
    Column("changed meanwhile", "changed"),
    Column("failed to decrypt", "failed"),
    Column("done", "done"),
    Column("next cursor", "next_cursor"),
]
_TOTALS = ("rows", "rewrapped", "unreadable", "changed", "failed")


@command(app, "list")
def list_() -> None:
    """List the org's encryption keys, oldest first (metadata only).

    Example: agent-sdk orgs keys list --org acme
    """
    ctx = current()
    keys = ctx.backend.list_encryption_keys()
    render_list(keys, KEY_COLUMNS, ctx.output, empty="no encryption keys (none made yet)")


@command(app, "rotate")
def rotate() -> None:
    """Make a new active key; new writes use it at once and the old key is retired (it still
    decrypts). Then run `orgs keys rewrap` to move older rows to it.

    Example: agent-sdk orgs keys rotate --org acme
    """
    ctx = current()
    key = ctx.backend.rotate_encryption_key()
    say(f"new writes of org {key.org_id} use key {key.id}; move older rows with `orgs keys rewrap`")
    render_one(key, KEY_FIELDS, ctx.output)


@command(app, "rewrap")
def rewrap(
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=5000, metavar="N", help="Rows per batch.")
    ] = 500,
    once: Annotated[bool, typer.Option("--once", help="Do one batch, print its cursor.")] = False,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="Resume after an earlier --once."),
    ] = None,
) -> None:
    """Re-encrypt the org's rows that are not on the active key (and plaintext rows from before
    encryption was enabled), in batches, while the deployment keeps running. Safe to stop and
    to run again.

    Example: agent-sdk orgs keys rewrap --org acme
    """
    ctx = current()
    totals: dict[str, Any] = dict.fromkeys(_TOTALS, 0)
    while True:
        report = ctx.backend.rewrap_encryption(limit=batch, cursor=cursor)
        for name in _TOTALS:
            totals[name] += getattr(report, name)
        say(f"rewrap: {totals['rewrapped']} values re-encrypted, {totals['rows']} rows examined")
        cursor = report.next_cursor
        if cursor is None or once:
            break
    summary = {"org_id": report.org_id, "key_id": report.key_id, **totals}
    summary |= {"done": cursor is None, "next_cursor": cursor}
    if totals["unreadable"]:
        say(f"{totals['unreadable']} values are under destroyed keys: left as they are")
    render_one(summary, REWRAP_FIELDS, ctx.output)
    if totals["failed"]:
        raise DecryptionFailed(
            f"{totals['failed']} values do not decrypt: they were altered, or moved from another"
            " row or org, and were left as they are",
            hint="restore those rows from a backup",
        )


@command(app, "destroy")
def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Destroy every encryption key of the org (crypto-shredding): its encrypted run inputs and
    outputs, events and sessions become unreadable for good. Other orgs are untouched.

    Example: agent-sdk orgs keys destroy --org acme --yes
    """
    ctx = current()

    def question() -> str:
        org = (
            ctx.backend.whoami().org_id
            if ctx.settings.client.org_id is None
            else ctx.settings.client.org_id
        )
        return (
            f"Destroy every encryption key of org {org}? Its encrypted data becomes unreadable"
            " for good, and this cannot be undone"
        )

    confirm(ctx, question, yes=yes, refused="destroying the encryption keys")
    keys = ctx.backend.destroy_encryption_keys()
    destroyed = [k for k in keys if k.state == "destroyed"]
    say(f"destroyed {len(destroyed)} encryption key(s): the org's encrypted data is unreadable")
    render_list(keys, KEY_COLUMNS, ctx.output, empty="no encryption keys")
