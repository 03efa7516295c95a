"""The API-key format, modelled on GitHub's tokens::

    asdk_0Nq3xP1fK7aBcDeF_4mZ...32 chars of secret...Qr7T9x
    ^^^^^ ^^^^^^^^^^^^^^^^ ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    type  key id (16)      secret (32, from `secrets`) + checksum (6)

* The ``asdk_`` prefix makes a leaked key recognisable to secret scanners and to people.
* The key id is public: it names the key in listings and audit records, and lets
  authentication find the row with one primary-key lookup instead of hashing against every
  key. Its first eight characters are the creation time in milliseconds, so ids sort by age and
  listings page newest first on the primary key alone.
* The checksum is CRC32 over everything before it, in base62. A typo or a truncated paste is
  refused here, before any database access; it is not a signature (anyone can compute it).
* All parts are base62 and joined by ``_`` (never ``-``), so a double click selects the whole key.

This module is the format alone, with no secret behind it: the CLI masks a key with it and PII
redaction recognises one, neither of which may reach into :mod:`agent_sdk.security`. Minting
keys and hashing them for the store is :mod:`agent_sdk.security.api_key_secrets`.
"""

from __future__ import annotations

import hmac
import re
import zlib

from agent_sdk.errors import AuthenticationError

PREFIX = "asdk_"
ID_LENGTH = 16
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

# Digits, then upper, then lower case: ascending in ASCII, so text order is number order.
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(
    rf"{PREFIX}([0-9A-Za-z]{{{ID_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


def base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(BASE62[digit])
    if value:
        raise ValueError("value does not fit")
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def parse(token: str) -> tuple[str, str]:
    """``(key_id, secret)`` of a well-formed token. Shape and checksum are checked here, without
    any database access, so garbage costs nothing but this call."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None or not hmac.compare_digest(checksum(token[:-CHECKSUM_LENGTH]), match.group(3)):
        raise AuthenticationError(
            "malformed API key",
            hint=f"an API key is {TOKEN_LENGTH} characters starting with {PREFIX!r}; "
            "check that it was copied whole",
        )
    return match.group(1), match.group(2)


def display(token: str) -> str:
    """``asdk_<id>_…<last4>``: enough to recognise a key, never enough to use it."""
    key_id, _ = parse(token)
    return f"{display_prefix(key_id)}…{token[-4:]}"


def display_prefix(key_id: str) -> str:
    return f"{PREFIX}{key_id}_"
