"""Rendering: records and dicts as table, json, jsonl, yaml or csv.

Data goes to stdout and nothing else does; messages (progress, hints, "created run X", the next
cursor) go to stderr, so ``agent-sdk runs list -o json | jq`` always reads clean JSON.

Everything printed goes through :func:`out` or :func:`say` (and data through :func:`plain`),
which print any text: a lone surrogate (in a run stored before the server refused them, or in an
argument that is not UTF-8) becomes U+FFFD instead of a UnicodeEncodeError after the command
did its work.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from agent_sdk.cli.context import OutputFormat
from agent_sdk.text import printable

if TYPE_CHECKING:
    from agent_sdk.records import Event, Page

Getter = Callable[[dict[str, Any]], Any]


class Column:
    """One column of a table. (A plain class, not a dataclass: this module loads on every call
    that prints data, and building a dataclass costs about a millisecond.)"""

    __slots__ = ("header", "key", "width")

    def __init__(self, header: str, key: str | Getter, width: int | None = None) -> None:
        self.header = header
        self.key = key
        self.width = width  # longer cells are cut with an ellipsis (table only)

    def value(self, row: dict[str, Any]) -> Any:
        return self.key(row) if callable(self.key) else row.get(self.key)


# -- streams ------------------------------------------------------------------------------------


def say(message: str) -> None:
    """A message for the human: stderr, never mixed into the data."""
    _echo(message, err=True)


def out(text: str) -> None:
    _echo(text, err=False)


def _echo(text: str, *, err: bool) -> None:
    # Click already writes UTF-8 to a stream set to ASCII (a C locale); what no encoding can
    # write is a lone surrogate.
    typer.echo(printable(text), err=err)


def color_enabled() -> bool:
    from agent_sdk.config import color_allowed

    return sys.stdout.isatty() and color_allowed()


_STATUS_COLORS = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
}


def paint_status(text: str, word: str) -> str:
    """Colour a (padded) status cell; only status words are ever coloured."""
    color = _STATUS_COLORS.get(word)
    if color is None or not color_enabled():
        return text
    return typer.style(text, fg=color)


# -- values ---------------------------------------------------------------------------------------


def plain(obj: Any) -> Any:
    """JSON-native data: records become dicts, enums their values, tuples lists, and strings
    printable ones (YAML would escape a lone surrogate as ``\\uDFFF``, not fail, so :func:`out`
    alone would not catch it)."""
    if isinstance(obj, Enum):
        obj = obj.value
    if isinstance(obj, str):
        return printable(obj)
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {printable(str(k)): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def dumps(obj: Any, *, pretty: bool = False) -> str:
    # Sorted keys: the same record prints the same way from the local and the HTTP backend.
    return json.dumps(
        plain(obj), sort_keys=True, ensure_ascii=False, indent=2 if pretty else None, default=str
    )


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else "-"
    return " ".join(str(value).split())  # one line per row, whatever the text holds


def clip(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def when(value: Any) -> str | None:
    """``2025-01-02T03:04:05.123456Z`` -> ``2025-01-02 03:04:05`` for tables."""
    if not isinstance(value, str) or len(value) < 19:
        return value if isinstance(value, str) else None
    return value[:19].replace("T", " ")


# -- formats --------------------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    cells = [[clip(cell(c.value(r)), c.width) for c in columns] for r in rows]
    widths = [max([len(c.header), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.header.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        parts = []
        for i, (text, width) in enumerate(zip(row, widths, strict=True)):
            padded = text if i == len(row) - 1 else text.ljust(width)
            parts.append(paint_status(padded, text) if columns[i].header == "STATUS" else padded)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def key_values(row: dict[str, Any], fields: Sequence[Column]) -> str:
    fields = fields or [Column(key, key) for key in row]
    width = max((len(f.header) for f in fields), default=0)
    lines = []
    for f in fields:
        text = clip(cell(f.value(row)), f.width)
        if f.header == "status":
            text = paint_status(text, text)
        lines.append(f"{(f.header + ':').ljust(width + 1)} {text}")
    return "\n".join(lines)


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    import csv
    import io

    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(keys))
    for row in rows:
        writer.writerow([_csv_value(row.get(k)) for k in keys])
    return buf.getvalue().rstrip("\n")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)  # nested values stay parseable


def yaml_text(data: Any) -> str:
    import yaml  # only the yaml format pays for importing it

    text: str = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False)
    return text.rstrip("\n")


# -- what commands call ---------------------------------------------------------------------------


def render_list(
    items: Iterable[Any], columns: Sequence[Column], fmt: OutputFormat, *, empty: str
) -> None:
    rows = [plain(i) for i in items]
    if fmt is OutputFormat.table:
        if rows:
            out(table(rows, columns))
        elif empty:
            say(empty)
    elif fmt is OutputFormat.json:
        out(dumps(rows, pretty=True))
    elif fmt is OutputFormat.jsonl:
        for row in rows:
            out(dumps(row))
    elif fmt is OutputFormat.yaml:
        out(yaml_text(rows) if rows else "[]")
    elif rows:  # csv: nothing at all for an empty list, not even a header we cannot know
        out(csv_text(rows))


def render_page(
    page: Page[Any], columns: Sequence[Column], fmt: OutputFormat, *, empty: str
) -> None:
    render_list(page.items, columns, fmt, empty=empty)
    if page.next_cursor:
        say(f"more: --cursor {page.next_cursor}")


def render_one(item: Any, fields: Sequence[Column], fmt: OutputFormat) -> None:
    row = plain(item)
    if fmt is OutputFormat.table:
        out(key_values(row, fields))
    elif fmt is OutputFormat.json:
        out(dumps(row, pretty=True))
    elif fmt is OutputFormat.jsonl:
        out(dumps(row))
    elif fmt is OutputFormat.yaml:
        out(yaml_text(row))
    else:
        out(csv_text([row]))


# -- events ---------------------------------------------------------------------------------------


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return clip(" ".join(text.split()), width)


def event_summary(event: Event) -> str:
    d = event.data
    t = event.type
    if t == "run.created":
        return f"agent {d.get('agent', '?')}"
    if t == "run.started":
        return f"attempt {d.get('attempt', '?')}"
    if t == "model.request":
        return f"step {d.get('step', '?')}"
    if t == "model.delta":
        return json.dumps(d.get("text", ""), ensure_ascii=False)
    if t == "model.response":
        calls = [c.get("name", "?") for c in d.get("tool_calls") or [] if isinstance(c, dict)]
        parts = [_short(d["text"], 60)] if d.get("text") else []
        if calls:
            parts.append("-> " + ", ".join(calls))
        return " ".join(parts) or "-"
    if t == "tool.call":
        return f"{d.get('name', '?')} {_short(d.get('arguments', {}), 70)}"
    if t == "tool.result":
        if d.get("ok", True):
            return f"{d.get('name', '?')} ok {_short(d.get('result', ''), 60)}"
        return f"{d.get('name', '?')} error {_short(d.get('error', ''), 60)}"
    if t == "run.succeeded":
        return _short(d.get("output", ""))
    if t == "run.failed":
        err = d.get("error") or {}
        return _short(err.get("message", err) if isinstance(err, dict) else err)
    if t == "run.cancelled":
        return _short(d.get("reason", "cancelled"))
    return _short(d) if d else ""


def event_line(event: Event) -> str:
    return f"{event.seq:>3} {event.type:<14} {event_summary(event)}".rstrip()


def render_event(event: Event, fmt: OutputFormat) -> None:
    """One event as it happens: a human line (table) or one JSON object per line."""
    if fmt is OutputFormat.table:
        out(event_line(event))
    else:
        out(dumps(event))
