"""Canonical JSON and the audit hash chain: the byte-exact format every audit hash and
checkpoint signature covers. It lives beside ``records`` because both the store (which
assigns ``seq`` and the chain hash inside its write transaction) and governance (which
verifies) need it, and neither may import the other.

Canonical JSON
--------------
Every hash and every signature covers the *canonical JSON* of a value, which is exactly::

    json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
               allow_nan=False).encode("utf-8")

so a verifier in another language reproduces it with these rules:

* no whitespace outside strings; ``,`` between items and ``:`` between key and value;
* object keys sorted by Unicode code point (Python's ``str`` order);
* strings are UTF-8 and not ``\\u``-escaped, except ``"`` -> ``\\"``, ``\\`` -> ``\\\\``,
  U+0008/0009/000A/000C/000D -> ``\\b \\t \\n \\f \\r`` and the other characters U+0000-U+001F
  -> ``\\u00xx`` (lowercase hex). U+007F, U+2028 and U+2029 are written as they are;
* integers in plain decimal, of any size; floats as Python's ``repr`` (the shortest text that
  reads back to the same double: ``1.0``, ``0.1``, ``1e-07``, ``1e+16``); NaN and infinities
  are refused; ``true``, ``false``, ``null``.

This is close to RFC 8785 (JCS) but not equal: JCS sorts keys by UTF-16 code unit and writes
``1e+16`` as ``10000000000000000``. Audit details rarely hold floats; the scrubber below makes
every value one of the JSON types above.

The hash chain
--------------
An org's records are numbered ``seq`` = 1, 2, 3, ... With the chain on, record *n* stores
``prev_hash`` = the ``hash`` of record *n-1* (``null`` for the first chained record) and::

    hash = hex(SHA-256(bytes.fromhex(prev_hash) + canonical_json(record without "hash")))

with ``b""`` in place of ``bytes.fromhex(prev_hash)`` when ``prev_hash`` is null. The record
without ``hash`` is the object of the fields ``org_id, seq, time, actor, actor_kind, action,
target, outcome, request_id, source_ip, details, prev_hash`` (nulls included). A JSONL export
line is the canonical JSON of the whole record, ``hash`` included, so it can be checked with
nothing but a JSON parser and SHA-256.

A signed checkpoint covers ``canonical_json({"org_id", "seq", "head_hash", "time"})``: "the first
``seq`` records of this org end in ``head_hash``". See :mod:`agent_sdk.governance.audit_signing`.

A signed retention anchor covers ``canonical_json({"kind": "audit.anchor", "org_id", "seq",
"head_hash", "time"})``: "this org's log now starts after record ``seq``, whose hash was
``head_hash``". The ``kind`` member keeps the two kinds of signature apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import InvalidInput

if TYPE_CHECKING:  # not at run time: every command that hashes imports this module
    from agent_sdk.records import AuditAnchor, AuditEntry, Checkpoint

# One encoder for every call: json.dumps with these options builds a new one each time, which
# costs more than encoding a small record.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The C encoder that JSONEncoder.encode builds again on every call, built once. It is made
# without the circular-reference memo, which would be shared state between threads (and keeps
# stale entries after a failed call); a cyclic value ends in RecursionError instead.
_C_ENCODE = (
    c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)


def _encode(value: Any) -> str:
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (see the module docstring for the exact rules)."""
    try:
        return _encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # not JSON, NaN, a cycle, a surrogate
        raise InvalidInput(f"audit record is not canonical JSON: {exc}") from None


def canonical_text(value: Any) -> str:
    """:func:`canonical_json` as text: the form the store keeps ``details`` in."""
    try:
        text = _encode(value)
        text.encode("utf-8")  # a lone surrogate cannot be stored or hashed: refuse it here
        return text
    except (TypeError, ValueError, RecursionError) as exc:  # not JSON, NaN, a cycle, a surrogate
        raise InvalidInput(f"audit record is not canonical JSON: {exc}") from None


# The fields of a record as hashed, in canonical (sorted) order, each with its ``"name":``.
PAYLOAD_FIELDS = tuple(
    sorted(
        "org_id seq time actor actor_kind action target outcome request_id source_ip details"
        " prev_hash".split()
    )
)
# Every member but details (which payload_json is given as text), each with its ``"name":``.
_OTHERS = tuple((name, f'"{name}":') for name in PAYLOAD_FIELDS if name != "details")
_DETAILS_AT = PAYLOAD_FIELDS.index("details")
_TEXT = encode_basestring


def _member(value: Any) -> str:
    # What the encoder writes for a member of a record: the common types without a call into
    # it, anything else through it (so the bytes are the same either way).
    kind = type(value)
    if kind is str:
        return str(encode_basestring(value))
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    return _encode(value)


def payload_json(entry: Mapping[str, Any], details_json: str) -> bytes:
    """``canonical_json(entry_payload(entry))`` when the canonical text of the record's
    ``details`` is already at hand (``details_json``): the store serialises ``details`` once,
    stores that text and hashes the record around it. Canonical JSON nests, so the bytes are
    the same as those of the whole record encoded in one go."""
    try:
        # Text, the most common member, is encoded inline rather than through _member.
        members = [
            label + (_TEXT(value) if type(value := entry[name]) is str else _member(value))
            for name, label in _OTHERS
        ]
        members.insert(_DETAILS_AT, '"details":' + details_json)
        return ("{" + ",".join(members) + "}").encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # not JSON, NaN, a lone surrogate
        raise InvalidInput(f"audit record is not canonical JSON: {exc}") from None


def entry_payload(entry: AuditEntry | Mapping[str, Any]) -> dict[str, Any]:
    """The record as hashed: every field except ``hash``."""
    data = dict(entry) if isinstance(entry, Mapping) else entry.to_dict()
    data.pop("hash", None)
    return data


def hash_payload(prev_hash: str | None, payload: bytes) -> str:
    """``hex(SHA-256(bytes.fromhex(prev_hash) + payload))``, ``payload`` being the record's
    canonical JSON without ``hash``."""
    try:
        prev = bytes.fromhex(prev_hash) if prev_hash else b""
    except ValueError:
        raise InvalidInput(f"prev_hash {prev_hash!r} is not hex") from None
    return hashlib.sha256(prev + payload).hexdigest()


def chain_hash(prev_hash: str | None, entry: AuditEntry | Mapping[str, Any]) -> str:
    """``hex(SHA-256(bytes.fromhex(prev_hash) + canonical_json(entry without hash)))``."""
    return hash_payload(prev_hash, canonical_json(entry_payload(entry)))


def checkpoint_payload(cp: Checkpoint | Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    data = dict(cp) if isinstance(cp, Mapping) else cp.to_dict()
    return canonical_json({k: data[k] for k in ("org_id", "seq", "head_hash", "time")})


ANCHOR_KIND = "audit.anchor"


def anchor_payload(anchor: AuditAnchor | Mapping[str, Any]) -> bytes:
    """The bytes a retention anchor's signature covers (see the module docstring)."""
    data = dict(anchor) if isinstance(anchor, Mapping) else anchor.to_dict()
    fields = {k: data[k] for k in ("org_id", "seq", "head_hash", "time")}
    return canonical_json({"kind": ANCHOR_KIND, **fields})
