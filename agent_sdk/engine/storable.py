"""Text every store can hold: the one boundary model and tool output crosses into the engine.

A model or a tool may produce text that is a valid Python ``str`` yet cannot be stored: a NUL
character (PostgreSQL's ``text`` refuses it) or a lone surrogate (``"\\udfff"``: not encodable
as UTF-8, so SQLite, PostgreSQL and every JSON answer of the server refuse it). Such text used
to reach the store only when the run ended, where it could not be written, and the run stayed
``running``. The runner passes every response of a model and every result of a tool through
:func:`make_storable` before anything else sees it: each such character becomes U+FFFD (the
replacement character), and the event that carries the text says how many were replaced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

REPLACEMENT = "\ufffd"
# In a Python str a well-formed character outside the BMP is one code point, so any code point
# in the surrogate range is a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass
class Replaced:
    """What :func:`make_storable` replaced, counted by kind."""

    nul: int = 0
    lone_surrogate: int = 0

    def __bool__(self) -> bool:
        return bool(self.nul or self.lone_surrogate)

    def note(self) -> dict[str, Any]:
        """The ``replaced`` entry of an event's data."""
        return {"nul": self.nul, "lone_surrogate": self.lone_surrogate, "with": "U+FFFD"}

    def _text(self, text: str) -> str:
        if not _UNSTORABLE.search(text):
            return text  # the common case: no copy

        def swap(match: re.Match[str]) -> str:
            if match.group(0) == "\x00":
                self.nul += 1
            else:
                self.lone_surrogate += 1
            return REPLACEMENT

        return _UNSTORABLE.sub(swap, text)

    def value(self, value: Any) -> Any:
        """``value`` with every string in it (dict keys too) made storable."""
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def make_storable(value: Any) -> tuple[Any, Replaced]:
    """``value`` with NUL and lone surrogates replaced by U+FFFD, and what was replaced."""
    replaced = Replaced()
    return replaced.value(value), replaced


__all__ = ["REPLACEMENT", "Replaced", "make_storable"]
