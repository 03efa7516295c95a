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

The database keeps only ``keyed_hash(pepper, secret)``: an HMAC with a server-side pepper, so a
copy of the database alone does not let anyone check guesses. The secret has ~190 bits of
entropy, so a fast hash is enough; there is nothing to brute-force.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from agent_sdk.errors import AuthenticationError, ConfigError
from agent_sdk.private_files import ensure_private_dir

if TYPE_CHECKING:
    from agent_sdk.config import Settings

PREFIX = "asdk_"
ID_LENGTH = 16
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

# Digits, then upper, then lower case: ascending in ASCII, so text order is number order.
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TIME_CHARS = 8  # 62**8 milliseconds after 1970 is the year 8889
_TOKEN = re.compile(
    rf"{PREFIX}([0-9A-Za-z]{{{ID_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
_KEY_ID = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
MIN_PEPPER_LENGTH = 16


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(BASE62[digit])
    if value:
        raise ValueError("value does not fit")
    return "".join(reversed(chars))


def _random62(n: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(n))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


_RANDOM_CHARS = ID_LENGTH - _TIME_CHARS
_RANDOM_MAX = 62**_RANDOM_CHARS - 1
_lock = threading.Lock()
_last: tuple[int, int] = (-1, 0)


def _reset_after_fork() -> None:
    # A forked child would otherwise continue the parent's sequence and mint its next ids.
    global _last
    _last = (-1, 0)


os.register_at_fork(after_in_child=_reset_after_fork)


def new_key_id() -> str:
    """16 base62 characters: 8 of creation time in ms, then 8 random, so ids sort by age. Within
    one millisecond the random part counts up (as in a ULID), so ids made in order sort in
    order."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last[0]:
            rand = secrets.randbelow(_RANDOM_MAX + 1)
        else:  # same millisecond, or the clock stepped back
            ms, rand = _last[0], _last[1] + 1
            if rand > _RANDOM_MAX:
                ms, rand = ms + 1, 0
        _last = (ms, rand)
    return _base62(ms, _TIME_CHARS) + _base62(rand, _RANDOM_CHARS)


def is_key_id(value: str) -> bool:
    return _KEY_ID.fullmatch(value) is not None


def generate(key_id: str | None = None) -> tuple[str, str]:
    """A new ``(key_id, token)``. Pass ``key_id`` to mint a new secret for an existing key
    (rotation keeps the id, so limits and audit history stay attached to it)."""
    if key_id is None:
        key_id = new_key_id()
    elif not is_key_id(key_id):
        raise ValueError(f"not an API key id: {key_id!r}")
    body = f"{PREFIX}{key_id}_{_random62(SECRET_LENGTH)}"
    return key_id, body + _checksum(body)


def parse(token: str) -> tuple[str, str]:
    """``(key_id, secret)`` of a well-formed token. Shape and checksum are checked here, without
    any database access, so garbage costs nothing but this call."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None or not hmac.compare_digest(
        _checksum(token[:-CHECKSUM_LENGTH]), match.group(3)
    ):
        raise AuthenticationError(
            "malformed API key",
            hint=f"an API key is {TOKEN_LENGTH} characters starting with {PREFIX!r}; "
            "check that it was copied whole",
        )
    return match.group(1), match.group(2)


def keyed_hash(pepper: bytes, secret: str) -> str:
    """HMAC-SHA256 of ``secret`` under the server's pepper, in hex: what the store keeps."""
    return hmac.new(pepper, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def display(token: str) -> str:
    """``asdk_<id>_…<last4>``: enough to recognise a key, never enough to use it."""
    key_id, _ = parse(token)
    return f"{display_prefix(key_id)}…{token[-4:]}"


def display_prefix(key_id: str) -> str:
    return f"{PREFIX}{key_id}_"


# -- the pepper ------------------------------------------------------------------------------
def load_pepper(settings: Settings) -> bytes:
    """The server's pepper: ``AGENT_SDK_API_KEY_PEPPER`` if set, else the file
    ``<data_dir>/api-key-pepper``, created on first use.

    Both hold text and are used the same way (its UTF-8 bytes), so copying the file's content
    into the variable, to share one pepper between several servers, keeps every key valid.
    Changing the pepper invalidates every API key.
    """
    if settings.api_key_pepper is not None:
        return _checked(settings.api_key_pepper, "AGENT_SDK_API_KEY_PEPPER")
    path = settings.pepper_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = _create_pepper_file(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API-key pepper {path}: {exc.strerror}",
            hint="fix its permissions, or set AGENT_SDK_API_KEY_PEPPER",
        ) from exc
    return _checked(text.strip(), str(path))


def _checked(pepper: str, source: str) -> bytes:
    if len(pepper) < MIN_PEPPER_LENGTH:
        raise ConfigError(
            f"the API-key pepper in {source} is too short",
            hint=f"use at least {MIN_PEPPER_LENGTH} random characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return pepper.encode("utf-8")


def _create_pepper_file(path: Path) -> str:
    """Create the pepper file so that two processes starting at once agree on one pepper.

    The value is written to a private temporary file (O_EXCL, 0600 from the start) and then
    published with ``link``, which like O_EXCL fails if the name exists: the file appears whole
    or not at all, so a loser never reads a half-written pepper, and it reads the winner's.
    """
    value = secrets.token_hex(32)
    try:
        ensure_private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return path.read_text(encoding="utf-8")  # another process won: use its pepper
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the API-key pepper {path}: {exc.strerror}",
            hint="make the data directory writable, or set AGENT_SDK_API_KEY_PEPPER",
        ) from exc
    return value


__all__ = [
    "PREFIX",
    "TOKEN_LENGTH",
    "display",
    "display_prefix",
    "generate",
    "is_key_id",
    "keyed_hash",
    "load_pepper",
    "new_key_id",
    "parse",
]
