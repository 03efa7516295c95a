"""``agent-sdk audit checkpoints export``: the signed checkpoints, copied outside the database.

The copy (the *anchor*) is what lets ``audit verify --anchor FILE --public-key KEY`` catch what
the database alone cannot show: an org whose records and checkpoints were all deleted, a tail
cut together with its checkpoints, a rewrite whose checkpoints were deleted or signed again.
Its format is described in :mod:`agent_sdk.audit_anchor`: one JSON object per line.

``--out FILE`` appends: under an exclusive lock on the file, it reads the newest seq the file
already holds for the org and appends only the checkpoints after it, in one write. Lines are
never rewritten, so the file can live on append-only storage, and running the export twice (or
from two cron jobs at once) adds nothing the second time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.output import Column, render_one, say
from agent_sdk.errors import InvalidInput
from agent_sdk.records import Checkpoint

if sys.platform != "win32":
    import fcntl

app = sub_app(
    help="Signed checkpoints of the audit log, to keep outside the database.",
    no_args_is_help=True,
)

FIELDS = ("org_id", "seq", "head_hash", "time", "signature", "key_id")
_HINT = "an anchor holds one JSON object per line with exactly the members " + ", ".join(FIELDS)
EXPORT_FIELDS = [
    Column("org", "org_id"),
    Column("file", "file"),
    Column("appended", "appended"),
    Column("newest seq", "newest_seq"),
]


def anchor_line(cp: Checkpoint) -> str:
    """The line of one checkpoint: canonical JSON (sorted keys, no spaces) and a newline."""
    text = json.dumps(cp.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text + "\n"


def parse_anchor(text: str, source: str) -> list[Checkpoint]:
    """The checkpoints of an anchor file's text; InvalidInput naming the first bad line."""
    checkpoints = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            checkpoints.append(_checkpoint(line, f"{source}: line {number}"))
    return checkpoints


def _checkpoint(line: str, where: str) -> Checkpoint:
    try:
        data = json.loads(line)
    except ValueError:
        raise InvalidInput(f"{where} is not JSON", hint=_HINT) from None
    if not isinstance(data, dict) or sorted(data) != sorted(FIELDS):
        raise InvalidInput(f"{where} is not a signed checkpoint", hint=_HINT)
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InvalidInput(f"{where}: seq must be a whole number from 1", hint=_HINT)
    if not all(isinstance(data[name], str) for name in FIELDS if name != "seq"):
        raise InvalidInput(f"{where}: every member but seq must be text", hint=_HINT)
    return Checkpoint(**data)


def read_anchor(path: Path) -> list[Checkpoint]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the anchor {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"the anchor {path} is not UTF-8 text", hint=_HINT) from None
    return parse_anchor(text, str(path))


def read_public_key(path: Path) -> str:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the public key {path}: {exc.strerror}") from None
    if len(pem) > 4096 or b"PUBLIC KEY-----" not in pem or not pem.isascii():
        raise InvalidInput(
            f"{path} is not a PEM public key",
            hint="export it from the signing key: openssl pkey -in audit-signing.key -pubout",
        )
    return pem.decode("ascii")


def append_new(path: Path, org_id: str, fetch: Any) -> tuple[int, int]:
    """Append the org's checkpoints newer than the file's newest to ``path``; return (how many
    were appended, the newest seq the file now holds for the org, 0 for none)."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)  # an anchor is public: signatures and hashes only
    except OSError as exc:
        raise InvalidInput(f"cannot open {path}: {exc.strerror}") from None
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)  # a second export waits, then finds nothing new
        text = _read_all(fd, path)
        if text and not text.endswith("\n"):
            raise InvalidInput(
                f"{path} ends in an incomplete line, so nothing was appended",
                hint="look at its last line: restore it from a copy, or remove that one"
                " incomplete line (never a complete one)",
            )
        newest = max((cp.seq for cp in parse_anchor(text, str(path)) if cp.org_id == org_id),
                     default=0)  # fmt: skip
        new = [cp for cp in fetch(after=newest) if cp.org_id == org_id and cp.seq > newest]
        if new:
            _write_all(fd, "".join(anchor_line(cp) for cp in new).encode("utf-8"), path)
            newest = new[-1].seq
        return len(new), newest
    finally:
        os.close(fd)


def _read_all(fd: int, path: Path) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text: not an anchor", hint=_HINT) from None


def _write_all(fd: int, data: bytes, path: Path) -> None:
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)  # never leave half a line behind
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


def _stdout(lines: Iterable[str]) -> None:
    write = sys.stdout.write
    for line in lines:
        write(line)
    sys.stdout.flush()


@command(app, "export")
def export(
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            dir_okay=False,
            help="Append the checkpoints FILE does not hold yet (create it if missing).",
        ),
    ] = None,
    after: Annotated[
        int,
        typer.Option("--after", min=0, metavar="SEQ", help="To stdout: only past this seq."),
    ] = 0,
) -> None:
    """Write the org's signed checkpoints as JSON lines, to keep outside the database.

    Example: agent-sdk audit checkpoints export --out /mnt/worm/audit-anchor.jsonl
    """
    ctx = current()
    backend = ctx.backend
    if out_file is None:
        _stdout(anchor_line(cp) for cp in backend.audit_checkpoints(after=after))
        return
    if after:
        raise InvalidInput("--after is for stdout; --out appends what FILE does not hold yet")
    org_id = backend.org_id or backend.whoami().org_id
    appended, newest = append_new(out_file, org_id, backend.audit_checkpoints)
    result = {"org_id": org_id, "file": str(out_file), "appended": appended, "newest_seq": newest}
    render_one(result, EXPORT_FIELDS, ctx.output)
    say(f"appended {appended} checkpoints of org {org_id!r} to {out_file}")


__all__ = ["anchor_line", "app", "parse_anchor", "read_anchor", "read_public_key"]
