"""Minting API keys and keeping them: ids that sort by age, new secrets, the keyed hash the store
keeps, and the pepper. The format of a key is :mod:`agent_sdk.api_key_format`.

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
from pathlib import Path
from typing import TYPE_CHECKING

from agent_sdk.api_key_format import (
    BASE62,
    ID_LENGTH,
    PREFIX,
    SECRET_LENGTH,
    TOKEN_LENGTH,
    display,
    display_prefix,
    parse,
)
from agent_sdk.api_key_format import base62 as _base62
from agent_sdk.api_key_format import checksum as _checksum
from agent_sdk.errors import ConfigError
from agent_sdk.private_files import ensure_private_dir

if TYPE_CHECKING:
    from agent_sdk.config import Settings

_TIME_CHARS = 8  # 62**8 milliseconds after 1970 is the year 8889
_KEY_ID = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
MIN_PEPPER_LENGTH = 16


def _random62(n: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(n))


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


def keyed_hash(pepper: bytes, secret: str) -> str:
    """HMAC-SHA256 of ``secret`` under the server's pepper, in hex: what the store keeps."""
    return hmac.new(pepper, secret.encode("utf-8"), hashlib.sha256).hexdigest()


# -- the pepper ------------------------------------------------------------------------------
def load_pepper(settings: Settings) -> bytes:
    """The server's pepper: ``AGENT_SDK_API_KEY_PEPPER`` if set, else the file
    ``<data_dir>/api-key-pepper``, created on first use.

    Both hold text and are used the same way (its UTF-8 bytes), so copying the file's content
    into the variable, to share one pepper between several servers, keeps every key valid.
    Changing the pepper invalidates every API key.
    """
    if settings.auth.api_key_pepper is not None:
        return _checked(settings.auth.api_key_pepper, "AGENT_SDK_API_KEY_PEPPER")
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
