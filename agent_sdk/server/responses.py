"""The one JSON encoder of the server's answers, robust to any text a row may hold.

Requests are refused when they carry text no store can hold (server/request_text.py), but a row
stored before that check, or written around the HTTP edge, can still hold a lone surrogate. Its
JSON does not encode as UTF-8, so Starlette's JSONResponse raised while rendering: a listing
answered 500 for the whole org, and a creation answered 500 *after* its commit, so a retrying
client made a duplicate. Here a lone surrogate becomes U+FFFD instead (agent_sdk.text), on the
slow path only: a text that encodes costs nothing more.

Every route renders with :class:`JSONResponse` from here (a test holds them to it), the problem
answers with :func:`json_bytes`, and the SSE frames with :func:`ascii_json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

from agent_sdk.text import printable, printable_value


def json_bytes(
    content: Any, *, default: Callable[[Any], Any] | None = None, allow_nan: bool = False
) -> bytes:
    """Compact UTF-8 JSON of ``content``; lone surrogates in it are written as U+FFFD."""
    text = json.dumps(
        content, ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"), default=default
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # The JSON text holds them raw (ensure_ascii=False), so replacing them in the text
        # leaves valid JSON with the same structure.
        return printable(text).encode("utf-8")


_ascii = json.JSONEncoder(separators=(",", ":")).encode


def ascii_json(value: Any) -> str:
    """Compact ASCII-only JSON of ``value`` (non-ASCII characters escaped), for the SSE frames;
    a lone surrogate is written as the escape of U+FFFD, never as a lone ``\\udXXX``."""
    text = _ascii(value)
    if "\\ud" in text and (clean := printable_value(value)) != value:
        # An escaped surrogate: a pair (an emoji) is fine, a lone one is replaced.
        text = _ascii(clean)
    return text


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse, rendered by :func:`json_bytes`."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


__all__ = ["JSONResponse", "ascii_json", "json_bytes"]
