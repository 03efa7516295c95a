"""Opaque pagination cursors.

A cursor carries the sort key of the last item of a page. It is base64 so callers treat it as a
token rather than an id they could edit, and versioned so the encoding can change later without
misreading cursors handed out by an older release.
"""

from __future__ import annotations

import base64
import binascii
import json

from agent_sdk.errors import InvalidInput

_VERSION = 1


def encode_cursor(key: str) -> str:
    raw = json.dumps({"v": _VERSION, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The key inside ``cursor``; raise InvalidInput for anything this module did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        data = None
    if (
        not isinstance(data, dict)
        or data.get("v") != _VERSION
        or not isinstance(data.get("k"), str)
    ):
        raise InvalidInput(
            "invalid cursor", hint="pass the next_cursor of a previous page unchanged"
        )
    key: str = data["k"]
    return key


__all__ = ["decode_cursor", "encode_cursor"]
