"""The audit record format: canonical JSON, the hash chain, secret scrubbing, export.

The byte format of hashes and signatures (canonical JSON, the chain rule) is defined in
:mod:`agent_sdk.canonical`, and re-exported here.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from agent_sdk.canonical import canonical_json, chain_hash, checkpoint_payload, entry_payload
from agent_sdk.errors import InvalidInput
from agent_sdk.records import AuditEntry
from agent_sdk.records.audit import check_format

REDACTED = "[REDACTED]"
# The columns of a CSV export, in the order of AuditEntry's fields.
CSV_COLUMNS = (
    "org_id seq time actor actor_kind action target outcome request_id source_ip details"
    " prev_hash hash"
).split()
_OPTIONAL = frozenset({"target", "request_id", "source_ip", "prev_hash", "hash"})


# -- secret scrubbing ----------------------------------------------------------------------------
# Keys are compared after lowercasing and turning "-" and " " into "_", so "X-Api-Key",
# "Set-Cookie" and "client secret" all match. A matching key hides its whole value, whatever
# its type: a nested object under "credentials_token" may hold anything.
_SECRET_KEY = re.compile(
    r"token|secret|passw(?:or)?d|api_?key|authorization|cookie|pepper|private_?key"
)
# Values: our API keys (asdk_<16 id>_<secret+checksum>, or any long asdk_ run, e.g. a mangled
# paste), JWTs (base64url of '{"' starts with "eyJ"), and bearer credentials. The public display
# prefix "asdk_<id>_" stays readable: it names a key without revealing it.
_SECRET_VALUE = re.compile(
    r"\basdk_(?:[0-9A-Za-z]{16}_[0-9A-Za-z]+|[0-9A-Za-z_]{24,})"
    r"|\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?i:\bbearer)\s+[^\s\"',;]+"
)
_MAX_DEPTH = 32


def _may_hold_secret(text: str) -> bool:
    # What every match of _SECRET_VALUE contains; none of it spans a newline.
    return "asdk_" in text or "eyJ" in text or "earer" in text.lower()


def scrub_text(text: str) -> str:
    """``text`` with every API key, JWT and ``Bearer`` credential in it replaced."""
    if not _may_hold_secret(text):
        return text  # the common case, without running the regex
    return _SECRET_VALUE.sub(REDACTED, text)


def scrub_texts(texts: dict[str, str | None]) -> dict[str, str | None]:
    """:func:`scrub_text` of every text in ``texts`` (None stays None). The usual record, with
    no secret in any field, costs one look at all of them joined by newlines (which no secret
    pattern crosses), instead of one per field."""
    if not _may_hold_secret("\n".join([t for t in texts.values() if t is not None])):
        return texts
    return {name: None if t is None else scrub_text(t) for name, t in texts.items()}


@functools.lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    # Cached: the same few keys ("agent", "status", ...) come back in every record.
    return _SECRET_KEY.search(key.lower().replace("-", "_").replace(" ", "_")) is not None


def scrub(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` with secrets replaced by ``"[REDACTED]"``, at any depth.

    Keys that name a secret hide their value; strings anywhere (keys included) lose API keys,
    JWTs and bearer credentials. Values that JSON cannot hold become text: tuples and sets
    become lists, bytes become ``"[N bytes]"``, NaN and infinities and other objects their
    ``str``. Past 32 levels of nesting the rest is replaced, so a hostile structure cannot
    exhaust the stack.
    """
    kind = type(value)
    if kind is str:
        return scrub_text(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is dict and _depth < _MAX_DEPTH:
        return _scrub_dict(value, _depth)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if _depth >= _MAX_DEPTH:
        return "[TOO DEEP]"
    if isinstance(value, Mapping):
        return _scrub_dict(value, _depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, _depth + 1) for v in value]
    return scrub_text(str(value))


@functools.lru_cache(maxsize=1024)
def _scrub_key(key: str) -> tuple[str, bool]:
    """A key as stored, and whether it names a secret. Cached, like is_secret_key: the same
    few keys come back in every record."""
    clean = scrub_text(key)
    return clean, is_secret_key(clean)


def _scrub_dict(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    """:func:`scrub` of a mapping above the depth limit."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        key, secret = _scrub_key(k if type(k) is str else str(k))
        kind = type(v)
        if secret:
            out[key] = REDACTED
        elif kind is str:  # the common leaves, without a call to scrub()
            out[key] = scrub_text(v)
        elif kind is int or kind is bool or v is None:
            out[key] = v
        else:
            out[key] = scrub(v, depth + 1)
    return out


# -- export and import ---------------------------------------------------------------------------
def to_jsonl(entry: AuditEntry) -> str:
    """One JSONL line: the canonical JSON of the whole record and a newline."""
    return canonical_json(entry.to_dict()).decode("utf-8") + "\n"


def export_lines(entries: Iterable[AuditEntry], fmt: str = "jsonl") -> Iterator[str]:
    """Render ``entries`` one line (one CSV record) at a time; nothing is held beyond one.

    The format is checked now, before the first line is asked for. CSV has a header; ``details``
    is its canonical JSON text and a null is an empty cell. CSV cells are not escaped against
    spreadsheet formula injection: this is a data export that must read back byte for byte.
    """
    check_format(fmt)
    return _jsonl(entries) if fmt == "jsonl" else _csv(entries)


def _jsonl(entries: Iterable[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield to_jsonl(entry)


def _csv(entries: Iterable[AuditEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for entry in entries:
        data = entry.to_dict()
        data["details"] = canonical_json(entry.details).decode("utf-8")
        yield line("" if data[c] is None else data[c] for c in CSV_COLUMNS)


def read_jsonl(lines: Iterable[str | bytes]) -> Iterator[AuditEntry]:
    """Records back from a JSONL export or the JSONL file sink; blank lines are skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            yield AuditEntry(**{name: data[name] for name in CSV_COLUMNS})
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"line {number} is not an audit record: {exc}") from None


def read_csv(lines: Iterable[str]) -> Iterator[AuditEntry]:
    """Records back from a CSV export (its header first)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header != CSV_COLUMNS:
        raise InvalidInput(
            "not an audit CSV export", hint="expected columns: " + ",".join(CSV_COLUMNS)
        )
    for row in reader:
        try:
            data: dict[str, Any] = dict(zip(CSV_COLUMNS, row, strict=True))
            for name in _OPTIONAL:
                data[name] = data[name] or None
            data["seq"] = int(data["seq"])
            data["details"] = json.loads(data["details"])
        except ValueError as exc:
            raise InvalidInput(
                f"CSV record {reader.line_num} is not an audit record: {exc}"
            ) from None
        yield AuditEntry(**data)


__all__ = [
    "CSV_COLUMNS",
    "REDACTED",
    "canonical_json",
    "chain_hash",
    "checkpoint_payload",
    "entry_payload",
    "export_lines",
    "is_secret_key",
    "read_csv",
    "read_jsonl",
    "scrub",
    "scrub_text",
    "scrub_texts",
    "to_jsonl",
]
