"""Row conversions and paging shared by the stores: records <-> column values, limits, cursors.

Nothing here knows a driver; a row is any sequence in the column order of the SELECTs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agent_sdk.cursors import decode_cursor, encode_cursor
from agent_sdk.errors import InvalidInput
from agent_sdk.records import Page, Run, RunStatus, Session

T = TypeVar("T")

MAX_LIMIT = 1000
# The columns of a run, in the order every run SELECT names them and run_from_row reads them.
RUN_FIELDS = (
    "id org_id session_id project_id agent agent_spec status input output error usage steps"
    " attempts metadata cancel_requested created_at updated_at started_at finished_at"
).split()


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"value is not JSON-serialisable: {exc}") from exc


def dumps_opt(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads_opt(text: str | None) -> Any:
    if text is None:
        return None
    return {} if text == "{}" else json.loads(text)  # most usage/metadata columns are empty


def parse_status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidInput(
            f"unknown run status {value!r}", hint="one of: " + ", ".join(RunStatus)
        ) from None


def parse_statuses(values: Sequence[Any] | None, *, empty_means_all: bool = True) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):  # a lone RunStatus is a str, which is a sequence of letters
        values = [values]
    out = list(dict.fromkeys(parse_status(v).value for v in values))
    if not out and not empty_means_all:
        return [""]  # matches no run: compare-and-set against no allowed status never applies
    return out


def column_value(name: str, value: Any) -> Any:
    if name == "status":
        return parse_status(value).value
    if name == "usage":
        return dumps(value if value is not None else {})
    if name == "error":
        return dumps_opt(value)
    if name == "cancel_requested":
        return int(bool(value))
    return value


def check_limit(limit: int) -> int:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


def cursor_key(cursor: str, kind: str) -> str:
    kind_, _, key = decode_cursor(cursor).partition(":")
    if kind_ != kind:
        raise InvalidInput("invalid cursor", hint=f"this cursor is not from a {kind} listing")
    return key


def make_page(items: list[T], limit: int, kind: str, key: Callable[[T], str]) -> Page[T]:
    if len(items) > limit:
        return Page(items[:limit], encode_cursor(f"{kind}:{key(items[limit - 1])}"))
    return Page(items)


_STATUS_BY_VALUE = {s.value: s for s in RunStatus}


def run_from_row(r: Sequence[Any]) -> Run:
    # Listing pages convert up to 1,000 rows: unpacking once is cheaper than name lookups.
    (id_, org_id, session_id, project_id, agent, agent_spec, status, input_, output, error, usage,
     steps, attempts, metadata, cancel_requested, created_at, updated_at, started_at,
     finished_at) = r  # fmt: skip
    return Run(
        id=id_,
        org_id=org_id,
        agent=agent,
        status=_STATUS_BY_VALUE.get(status) or RunStatus(status),
        input=input_,
        created_at=created_at,
        updated_at=updated_at,
        session_id=session_id,
        project_id=project_id,
        output=output,
        error=loads_opt(error),
        usage=loads_opt(usage),
        steps=steps,
        attempts=attempts,
        metadata=loads_opt(metadata),
        agent_spec=loads_opt(agent_spec),
        started_at=started_at,
        finished_at=finished_at,
        cancel_requested=bool(cancel_requested),
    )


def session_from_row(r: Sequence[Any]) -> Session:
    org_id, id_, project_id, metadata, created_at, updated_at, run_count = r
    return Session(
        id=id_,
        org_id=org_id,
        created_at=created_at,
        updated_at=updated_at,
        project_id=project_id,
        metadata=json.loads(metadata),
        run_count=run_count,
    )
