"""Parameters several routes share, declared once so the OpenAPI document says what the server
checks: bounds on every integer (a number past what the stores hold is a 422 from validation, not
an error from a database driver), the shape of a cursor, and the core's own rules (org ids, run
statuses) as patterns.

Where the core checks a value itself (an org id, a status), the pattern here is built from the
core's rule and only *documents* it (``json_schema_extra``): the core keeps the one check, with
its own status and wording, and the document cannot drift from it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Query

from agent_sdk.core.orgs import ORG_ID
from agent_sdk.records import RunStatus

# The largest integer SQLite and PostgreSQL (BIGINT) store: every seq, count and bound above it
# is refused at the edge.
MAX_INT64 = 2**63 - 1


def anchored(rule: re.Pattern[str] | str) -> str:
    """A Python ``fullmatch`` rule as a JSON Schema pattern (which matches anywhere unless
    anchored)."""
    text = rule.pattern if isinstance(rule, re.Pattern) else rule
    return f"^(?:{text})$"


ORG_ID_PATTERN = anchored(ORG_ID)

# What encode_cursor makes: URL-safe base64 without padding. Only a next_cursor of the same
# listing is accepted; anything else is a 422 like any other invalid parameter.
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"
CURSOR_DOC = "the next_cursor of the previous page of this listing, unchanged (opaque)"
Cursor = Annotated[
    str | None, Query(min_length=1, max_length=1024, pattern=CURSOR_PATTERN, description=CURSOR_DOC)
]

# A seq to read after: 0 (from the start) up to the largest seq a store can hold.
After = Annotated[
    int, Query(ge=0, le=MAX_INT64, description="return records with seq greater than this")
]

_STATUS = "|".join(s.value for s in RunStatus)
# One status or several, comma-separated (the core also takes upper case and spaces).
STATUS_LIST_PATTERN = f"^(?:{_STATUS})(?:,(?:{_STATUS}))*$"


def string_or_null(**schema: Any) -> dict[str, Any]:
    """``json_schema_extra`` for an optional string field: the string branch gets ``schema``."""
    return {"anyOf": [{"type": "string", **schema}, {"type": "null"}]}


__all__ = [
    "CURSOR_PATTERN",
    "MAX_INT64",
    "ORG_ID_PATTERN",
    "STATUS_LIST_PATTERN",
    "After",
    "Cursor",
    "anchored",
    "string_or_null",
]
