"""``agent-sdk audit tail|export|verify|checkpoints``: the org's audit log."""

from __future__ import annotations

import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent_sdk.cli import audit_anchor
from agent_sdk.cli.context import OutputFormat, command, current, sub_app
from agent_sdk.cli.output import Column, dumps, out, render_list, render_one, say, when
from agent_sdk.errors import AuditVerificationFailed, InvalidInput
from agent_sdk.records import AuditEntry
from agent_sdk.times import resolve_since

app = sub_app(help="The audit log: tail, export, verify.", no_args_is_help=True)
app.add_typer(audit_anchor.app, name="checkpoints")

FOLLOW_INTERVAL = 1.0  # seconds between polls of `tail --follow`
FOLLOW_PAGE = 1000

AUDIT_COLUMNS = [
    Column("SEQ", "seq"),
    Column("TIME", lambda r: when(r.get("time"))),
    Column("ACTOR", "actor", 30),
    Column("ACTION", "action"),
    Column("TARGET", "target", 30),
    Column("OUTCOME", "outcome"),
    Column("SOURCE", "source_ip"),
]
REPORT_FIELDS = [
    Column("org", "org_id"),
    Column("ok", "ok"),
    Column("records", "count"),
    Column("first bad", "first_bad_seq"),
    Column("reason", "reason"),
    Column("head hash", "head_hash"),
    Column("checkpoints", "checkpoints"),
    Column("unchained", "unchained"),
    Column("pruned by retention", "pruned"),
    Column("anchor checkpoints intact", "anchored"),
]


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _pause() -> None:
    time.sleep(FOLLOW_INTERVAL)


def entry_line(entry: AuditEntry) -> str:
    """One record as a line of ``tail --follow`` in table mode."""
    target = f" {entry.target}" if entry.target else ""
    return (
        f"{entry.seq:>6}  {when(entry.time)}  {entry.outcome:<7}  {entry.action}{target}"
        f"  by {entry.actor}"
    )


@command(app, "tail")
def tail(
    after: Annotated[
        int,
        typer.Option("--after", min=0, metavar="SEQ", help="Records after this seq (0: newest)."),
    ] = 0,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, metavar="N", help="How many.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C stops).")
    ] = False,
) -> None:
    """Print the newest audit records, oldest first, or the records after a seq.

    Example: agent-sdk audit tail --limit 50 --follow
    """
    ctx = current()
    fmt = ctx.output
    backend = ctx.backend
    if follow and fmt in (OutputFormat.yaml, OutputFormat.csv):
        raise InvalidInput("--follow prints table, json or jsonl", hint="use -o jsonl")
    entries = backend.audit_tail(after=after, limit=limit)
    if not follow:
        render_list(entries, AUDIT_COLUMNS, fmt, empty="no audit records")
        return
    last = entries[-1].seq if entries else after
    while True:
        for entry in entries:
            out(entry_line(entry) if fmt is OutputFormat.table else dumps(entry))
            last = entry.seq
        sys.stdout.flush()
        _pause()
        # From an empty log (last 0) this asks for the newest records: all of them, up to a page.
        entries = backend.audit_tail(after=last, limit=FOLLOW_PAGE)


@command(app, "export", output=False)
def export(
    format: Annotated[
        ExportFormat,
        typer.Option("--format", help="jsonl (one record per line) or csv.", metavar="FMT"),
    ] = ExportFormat.jsonl,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="AGE|TIME",
            help="Only records from this time: an ISO-8601 time, or an age (30m, 1h, 2d).",
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Write to FILE instead of stdout.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Stream the whole audit log as JSONL or CSV, without holding it in memory.

    Example: agent-sdk audit export --format csv --since 2025-01-01 --out audit.csv
    """
    ctx = current()
    if since is not None:
        resolve_since(since, "--since")  # a usage error here, before any backend is opened
    lines = ctx.backend.audit_export(format=format.value, since=since)
    if out_file is None:
        write = sys.stdout.write
        for line in lines:
            write(line)
        sys.stdout.flush()
        return
    # Written beside the target and renamed at the end: a failed export leaves no half file
    # that looks complete.
    part = out_file.with_name(f".{out_file.name}.part")
    count = 0
    try:
        with part.open("w", encoding="utf-8", newline="") as fh:
            for line in lines:
                fh.write(line)
                count += 1
        os.replace(part, out_file)
    except OSError as exc:
        raise InvalidInput(f"cannot write {out_file}: {exc.strerror}") from None
    finally:
        part.unlink(missing_ok=True)
    say(f"wrote {count} lines to {out_file}")


@command(app, "verify")
def verify(
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            metavar="FILE",
            dir_okay=False,
            help="Also hold the log against the checkpoints exported to FILE (needs"
            " --public-key): catches what was deleted together with its checkpoints.",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            metavar="KEY",
            dir_okay=False,
            help="PEM public key that must have signed every checkpoint (not the key file"
            " beside the database).",
        ),
    ] = None,
    allow_unchained: Annotated[
        bool,
        typer.Option(
            "--allow-unchained",
            help="Exit 0 for a log written with the hash chain off (nothing to verify).",
        ),
    ] = False,
) -> None:
    """Check the org's hash chain and signed checkpoints; exit 1 naming the first bad record.

    Example: agent-sdk audit verify --org acme
    Example: agent-sdk audit verify --anchor anchor.jsonl --public-key audit-signing.pub
    """
    from agent_sdk.cli.audit_anchor import read_anchor, read_public_key

    if anchor is not None and public_key is None:
        raise InvalidInput(
            "--anchor needs --public-key: an anchor is only as good as the key you check it with",
            hint="openssl pkey -in audit-signing.key -pubout > audit-signing.pub, once, kept"
            " away from the database",
        )
    checkpoints = read_anchor(anchor) if anchor is not None else None
    pem = read_public_key(public_key) if public_key is not None else None
    ctx = current()
    report = ctx.backend.audit_verify(anchor=checkpoints, public_key=pem)
    render_one(report, REPORT_FIELDS, ctx.output)
    if report.unchained_only and allow_unchained:
        say(
            f"the hash chain is off: the {report.count} records of org {report.org_id!r} are not"
            " chained, so nothing was verified (AGENT_SDK_AUDIT_HASH_CHAIN=true chains the"
            " records written from then on)"
        )
        return
    if not report.ok:
        if report.unchained_only:
            hint = (
                "set AGENT_SDK_AUDIT_HASH_CHAIN=true: the records written from then on are"
                " chained (or pass --allow-unchained to accept a log without a chain)"
            )
        else:
            hint = (
                "keep an export of the log as evidence (agent-sdk audit export) and compare it"
                " with your off-site copy"
            )
        raise AuditVerificationFailed(
            report.summary(), hint=hint, first_bad_seq=report.first_bad_seq
        )
    say(report.summary())
    if anchor is None:
        say(
            "note: without --anchor, records deleted together with their checkpoints (or a"
            " whole log) do not show; see agent-sdk audit checkpoints export"
        )
