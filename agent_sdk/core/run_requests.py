"""What a run creation request may hold, and how a request is keyed for idempotency.

Pure checks and conversions, apart from the service (:mod:`agent_sdk.core.runs`) that stores
runs: the limits of a request, the Idempotency-Key syntax, the digest that tells a retry of a
request from another request, and the answer a held key gives back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from agent_sdk.canonical import canonical_json
from agent_sdk.errors import Conflict, InvalidInput
from agent_sdk.records import Run, RunStatus
from agent_sdk.store.idempotency import DONE, IdempotencyRecord
from agent_sdk.text import first_unstorable
from agent_sdk.times import iso

MAX_INPUT_CHARS = 1_000_000


def parse_statuses(values: Sequence[str] | None) -> list[RunStatus] | None:
    if not values:
        return None
    out = []
    for v in values:
        for part in v.split(","):
            try:
                out.append(RunStatus(part.strip().lower()))
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                raise InvalidInput(
                    f"unknown run status {part!r}", hint=f"use one of: {known}"
                ) from None
    return out


def check_storable(**fields: Any) -> None:
    """Every string of a creation request is text a store can hold. The HTTP edge refuses such
    requests first (server/request_text.py); this holds for the CLI's local backend and the
    Python API, where a lone surrogate comes from an argument that is not UTF-8."""
    for name, value in fields.items():
        found = first_unstorable(value)
        if found is not None:
            where = ".".join(str(p) for p in [name, *found[0]])
            raise InvalidInput(
                f"{where} holds {found[1]}, which cannot be stored",
                hint="send valid Unicode text, without NUL characters",
            )


def request_hash(
    agent: str | dict[str, Any],
    input: str,
    session_id: str | None,
    metadata: dict[str, Any] | None,
    script: list[dict[str, Any]] | None,
) -> str:
    """SHA-256 of the canonical JSON of a creation request, as parsed: key order and spacing of
    the body do not matter, and no metadata is the same as empty metadata (both make the same
    run)."""
    request = {
        "agent": agent,
        "input": input,
        "session_id": session_id,
        "metadata": metadata or {},
        "script": script,
    }
    try:
        return hashlib.sha256(canonical_json(request)).hexdigest()
    except InvalidInput:
        raise InvalidInput("the request is not JSON (it cannot be keyed for idempotency)") from None


def replay(held: IdempotencyRecord, digest: str) -> Run:
    if held.request_hash != digest:
        raise InvalidInput(
            f"Idempotency-Key {held.key!r} was already used with a different request",
            hint="resend the first request unchanged, or use a new key for a new request",
        )
    if held.state != DONE or held.response is None:
        raise Conflict(
            f"a request with Idempotency-Key {held.key!r} is still in progress",
            hint="retry once it has finished",
        )
    return Run.from_dict(held.response)


def later(when: str, seconds: float) -> str:
    """The timestamp ``seconds`` after ``when``, in the store's fixed-width format."""
    try:
        at = datetime.fromisoformat(when.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    except OverflowError:  # a TTL past the year 9999 means "never expires"
        return "9999-12-31T23:59:59.999999Z"
    return iso(at)


def valid_client_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "-_." for c in value)
