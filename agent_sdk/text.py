"""Text no store can hold, found on the way in and replaced on the way out.

Two kinds of character make trouble. A lone surrogate (U+D800-U+DFFF not in a pair) is valid in a
JSON escape (``"\\udfff"``) and in a Python ``str``, but it has no UTF-8 encoding: a driver, a
response or a terminal that encodes it fails. A NUL (U+0000) is refused by PostgreSQL in any text.

Edges refuse both in what they are sent (:func:`unstorable`), so nothing new is stored with them;
and everything rendered for a client or a terminal goes through :func:`printable` or
:func:`printable_value`, so a row stored before (or written around the edge) still shows, with
U+FFFD in place of each lone surrogate.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

REPLACEMENT = "\ufffd"

# In a str, a surrogate is always lone: a pair decoded from JSON or UTF-8 is one code point.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What in ``text`` no store can hold (``"a NUL character"``, ``"a lone surrogate
    (U+DFFF)"``), or None when it can all be stored."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "a NUL character (U+0000)"
    return f"a lone surrogate (U+{ord(char):04X})"


def first_unstorable(value: Any) -> tuple[list[str | int], str] | None:
    """Where the first string of a JSON-like value that no store can hold is (keys and indexes
    from the top, a key itself named by its printable form) and what it holds, or None."""
    pending: deque[tuple[Any, list[str | int]]] = deque([(value, [])])
    while pending:  # breadth first, without recursion: the shallowest is named
        item, path = pending.popleft()
        if isinstance(item, str):
            if what := unstorable(item):
                return path, what
        elif isinstance(item, dict):
            for key, v in item.items():
                if isinstance(key, str) and (what := unstorable(key)):
                    return [*path, printable(key)], what
                pending.append((v, [*path, printable(str(key))]))
        elif isinstance(item, list | tuple):
            pending.extend((v, [*path, i]) for i, v in enumerate(item))
    return None


def printable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    if _SURROGATE.search(text) is None:  # the usual case: no copy
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def printable_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with :func:`printable` applied to every
    string in it, keys included. Values without a lone surrogate are returned as they are."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_value(k): printable_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_value(v) for v in value]
    return value


__all__ = ["REPLACEMENT", "first_unstorable", "printable", "printable_value", "unstorable"]
