"""The bootstrap admin token, until per-org API keys exist.

Only a SHA-256 digest is kept in the database; the plaintext is shown once and kept for the local
CLI in a 0600 file in the data directory. A token is 32 random bytes, so a plain digest (no salt,
no slow hash) is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sdk.store.base import Store

TOKEN_PREFIX = "asdk_admin_"
_META_KEY = "admin_token_sha256"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_admin_token(store: Store, path: Path) -> str | None:
    """Create the admin token if the database has none. Returns the plaintext when it was created
    now or is still readable from ``path``; None when the database has a token this machine
    cannot show."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if store.set_meta(_META_KEY, _digest(token), only_if_absent=True):
        write_secret_file(path, token)
        return token
    try:
        kept = path.read_text().strip()
    except OSError:
        return None
    return kept if verify_admin_token(store.get_meta(_META_KEY), kept) else None


def verify_admin_token(digest: str | None, token: str) -> bool:
    return digest is not None and hmac.compare_digest(digest, _digest(token))


def admin_token_digest(store: Store) -> str | None:
    return store.get_meta(_META_KEY)


def write_secret_file(path: Path, value: str) -> None:
    """Write a secret readable by its owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
