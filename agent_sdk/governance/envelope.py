"""Envelope encryption at rest (``AGENT_SDK_ENCRYPTION_ENABLED=true``).

Three layers of keys, each AES-256-GCM::

    master key (outside the database: AGENT_SDK_ENCRYPTION_MASTER_KEY or ..._FILE)
      └── wraps each org's key-encryption key (KEK)      encryption_keys.kek
            └── wraps that org's data key (DEK)          encryption_keys.dek
                  └── seals tenant columns               enc:v1:<key id>:<base64(nonce|ct|tag)>

A row of ``encryption_keys`` is one key generation of one org (a KEK and its DEK). Every sealed
value names the generation that sealed it, so after a rotation old values stay readable while
new writes use the new generation at once, and the re-encryption job
(:mod:`agent_sdk.core.encryption_keyring`) can find what is left to move. Each value gets a
fresh 96-bit nonce; its associated data is the org, table, row id and column, so a ciphertext
copied to another row, column or org does not decrypt. Wrapped keys are bound the same way to
their org and key id.

Destroying an org's keys overwrites both wrapped keys: the data sealed under them is gone for
good (crypto-shredding), and nothing of any other org changes.

The :class:`EnvelopeCodec` is what the store calls (see :mod:`agent_sdk.store.sealing`). It keeps
unwrapped DEKs in a bounded cache for ``AGENT_SDK_ENCRYPTION_KEY_CACHE_TTL`` seconds, so the hot
path (an event append) costs one AES-GCM operation and no key read. ``cryptography`` is imported
when a codec or a master key is built, never at CLI start-up.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent_sdk.errors import ConfigError, Conflict, DecryptionFailed, KeyDestroyed
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records.sealed import ACTIVE, DESTROYED, SEALED_PREFIX, StoredKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from agent_sdk.config import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
DEFAULT_CACHE_TTL = 60.0
DEFAULT_CACHE_KEYS = 1024
_MASTER_HINT = (
    "set AGENT_SDK_ENCRYPTION_MASTER_KEY to the base64 of 32 random bytes (for example the output"
    " of `openssl rand -base64 32`), or AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE to a file holding it"
)


def _aad(*parts: str) -> bytes:
    """Associated data: each part prefixed with its length, so no two different tuples share
    bytes ("a", "bc" and "ab", "c" differ)."""
    return "".join(f"{len(p)}:{p}" for p in parts).encode("utf-8", "surrogatepass")


def _aesgcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _seal_bytes(aead: AESGCM, plain: bytes, aad: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + aead.encrypt(nonce, plain, aad)).decode("ascii")


def _open_bytes(aead: AESGCM, text: str, aad: bytes) -> bytes | None:
    """The plaintext, or None when ``text`` is not a ciphertext made with this key and aad."""
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except _invalid_tag():
        return None


@functools.cache
def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


class WrappedKeyStore(Protocol):
    """What the codec needs of the store that keeps the wrapped keys (every Store has it; see
    :mod:`agent_sdk.store.wrapped_keys`)."""

    #: The store's column codec (an :class:`agent_sdk.store.sealing.ColumnCodec`), which
    #: :func:`attach_codec` sets; a store module is not imported here, so it is not named.
    codec: Any

    def in_transaction(self) -> bool: ...

    def get_encryption_key(self, org_id: str, key_id: str) -> StoredKey | None: ...

    def active_encryption_key(self, org_id: str) -> StoredKey | None: ...

    def list_encryption_keys(self, org_id: str) -> list[StoredKey]: ...

    def insert_encryption_key(self, key: StoredKey) -> bool: ...

    def encryption_master_key_ids(self) -> list[str]: ...


# -- the master key ----------------------------------------------------------------------------
class MasterKey:
    """The key that wraps every KEK. Its ``id`` is a keyed fingerprint, safe to store and show."""

    __slots__ = ("_aead", "id")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ConfigError("the encryption master key must be 32 bytes", hint=_MASTER_HINT)
        self._aead = _aesgcm(raw)
        self.id = hmac.new(raw, b"agent-sdk master key id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id!r})"

    def wrap(self, secret: bytes, aad: bytes) -> str:
        return _seal_bytes(self._aead, secret, aad)

    def unwrap(self, text: str, aad: bytes) -> bytes | None:
        return _open_bytes(self._aead, text, aad)


def parse_master_key(text: str, source: str) -> MasterKey:
    """A master key from base64 text (standard or URL-safe alphabet). The error names
    ``source`` and never echoes the text."""
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{source} is not the base64 of 32 bytes", hint=_MASTER_HINT)
    return MasterKey(raw)


def load_master_key(settings: Settings) -> MasterKey:
    """The master key of ``settings``: ConfigError when encryption is on without exactly one."""
    value, path = settings.encryption.master_key, settings.encryption.master_key_file
    if value and path:
        raise ConfigError(
            "both AGENT_SDK_ENCRYPTION_MASTER_KEY and AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE are set",
            hint="set only one of them",
        )
    if value:
        return parse_master_key(value, "AGENT_SDK_ENCRYPTION_MASTER_KEY")
    if not path:
        raise ConfigError(
            "AGENT_SDK_ENCRYPTION_ENABLED=true needs a master key kept outside the database",
            hint=_MASTER_HINT,
        )
    try:
        text = Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
        raise ConfigError(
            f"cannot read the encryption master key file {path}: {why}",
            hint="check AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE and the file's permissions",
        ) from None
    return parse_master_key(text, f"the encryption master key file {path}")


def check_master_key(store: WrappedKeyStore, master: MasterKey) -> None:
    """ConfigError when the database holds keys wrapped by another master key: a process
    started with the wrong key says so at once, instead of failing on every read."""
    others = [i for i in store.encryption_master_key_ids() if i != master.id]
    if others:
        raise ConfigError(
            f"the encryption master key (id {master.id}) is not the one that wrapped the keys in"
            f" this database (id {', '.join(others)})",
            hint="start with the master key the org keys were created with",
        )


# -- key generations ---------------------------------------------------------------------------
def _kek_aad(org_id: str, key_id: str) -> bytes:
    return _aad("kek", org_id, key_id)


def _dek_aad(org_id: str, key_id: str) -> bytes:
    return _aad("dek", org_id, key_id)


def make_key(org_id: str, master: MasterKey, *, when: str | None = None) -> StoredKey:
    """A new active key generation of ``org_id``: a random KEK wrapped by the master key, and a
    random DEK wrapped by that KEK. The unwrapped keys leave this function in no form."""
    key_id = new_id("ek")
    kek, dek = os.urandom(KEY_BYTES), os.urandom(KEY_BYTES)
    return StoredKey(
        org_id=org_id,
        id=key_id,
        state=ACTIVE,
        master_key_id=master.id,
        kek=master.wrap(kek, _kek_aad(org_id, key_id)),
        dek=_seal_bytes(_aesgcm(kek), dek, _dek_aad(org_id, key_id)),
        created_at=when or utcnow(),
    )


def unwrap_data_key(master: MasterKey, key: StoredKey) -> bytes:
    """The DEK of a stored generation. KeyDestroyed once destroyed; ConfigError for a wrong
    master key; DecryptionFailed for wrapped keys that were altered or moved."""
    if key.state == DESTROYED or key.kek is None or key.dek is None:
        raise _destroyed(key.org_id)
    kek = master.unwrap(key.kek, _kek_aad(key.org_id, key.id))
    if kek is None:
        if key.master_key_id != master.id:
            raise ConfigError(
                f"encryption key {key.id} of org {key.org_id!r} was wrapped by another master"
                f" key (id {key.master_key_id}; this one is {master.id})",
                hint="start with the master key the org keys were created with",
            )
        raise DecryptionFailed(f"the wrapped key {key.id} of org {key.org_id!r} does not decrypt")
    dek = _open_bytes(_aesgcm(kek), key.dek, _dek_aad(key.org_id, key.id))
    if dek is None:
        raise DecryptionFailed(f"the wrapped data key {key.id} of org {key.org_id!r} is damaged")
    return dek


def _destroyed(org_id: str) -> KeyDestroyed:
    return KeyDestroyed(
        f"the encryption keys of org {org_id!r} were destroyed: its encrypted data is unreadable",
        hint="to store new data for the org, create a key with `agent-sdk orgs keys rotate`",
    )


# -- the codec the store calls -------------------------------------------------------------------
class EnvelopeCodec:
    """Seals and opens tenant columns with the org's DEK (see :mod:`agent_sdk.store.sealing`).

    Keys are read from ``store`` and kept unwrapped for ``ttl`` seconds, at most ``max_keys``
    of them. An org's first key is made on its first sealed write. A key made inside a
    transaction is not cached until it is seen from outside one: were the transaction rolled
    back, a cached key would seal data under a key that does not exist.
    """

    def __init__(
        self,
        store: WrappedKeyStore,
        master: MasterKey,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_keys: int = DEFAULT_CACHE_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.master = master
        self.ttl = ttl
        self.max_keys = max(1, max_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[str, tuple[float, str, AESGCM]] = {}
        # (org, key id) -> (expiry, AEAD or None for a destroyed key), oldest inserted first
        self._keys: OrderedDict[tuple[str, str], tuple[float, AESGCM | None]] = OrderedDict()
        self._unconfirmed: set[str] = set()

    # -- ColumnCodec ------------------------------------------------------------------------------
    def seal(self, org_id: str, table: str, row_id: str, column: str, text: str) -> str:
        key_id, aead = self.active_key(org_id)
        plain = text.encode("utf-8", "surrogatepass")
        body = _seal_bytes(aead, plain, _aad(org_id, table, row_id, column))
        return f"{SEALED_PREFIX}{key_id}:{body}"

    def open(self, org_id: str, table: str, row_id: str, column: str, stored: str) -> str:
        key_id, sep, body = stored[len(SEALED_PREFIX) :].partition(":")
        if not stored.startswith(SEALED_PREFIX) or not sep or not key_id:
            raise DecryptionFailed(f"{table}.{column} of {row_id!r} is not a sealed value")
        aead = self._key(org_id, key_id)
        plain = _open_bytes(aead, body, _aad(org_id, table, row_id, column))
        if plain is None:
            raise DecryptionFailed(
                f"{table}.{column} of {row_id!r} in org {org_id!r} does not decrypt: it was"
                " altered, or moved from another row, column or org",
                hint="restore the row from a backup",
            )
        return plain.decode("utf-8", "surrogatepass")

    # -- keys -------------------------------------------------------------------------------------
    def active_key(self, org_id: str) -> tuple[str, AESGCM]:
        """The id and AEAD of the org's active generation, made now if the org has none."""
        now = self._clock()
        hit = self._active.get(org_id)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        stored = self.store.active_encryption_key(org_id) or self._provision(org_id)
        aead = _aesgcm(unwrap_data_key(self.master, stored))
        if self._cacheable(stored.id):
            with self._lock:
                self._active[org_id] = (now + self.ttl, stored.id, aead)
                self._put((org_id, stored.id), now, aead)
        return stored.id, aead

    def _provision(self, org_id: str) -> StoredKey:
        keys = self.store.list_encryption_keys(org_id)
        if keys and all(k.state == DESTROYED for k in keys):
            # Shredded: nothing new is stored for the org until an admin makes a key again.
            raise _destroyed(org_id)
        key = make_key(org_id, self.master)
        if self.store.insert_encryption_key(key):
            if self.store.in_transaction():
                with self._lock:
                    if len(self._unconfirmed) > 10_000:  # ids of rolled-back keys pile up here
                        self._unconfirmed.clear()
                    self._unconfirmed.add(key.id)
            return key
        winner = self.store.active_encryption_key(org_id)  # another process made it first
        if winner is None:
            raise Conflict(f"could not make the encryption key of org {org_id!r}", hint="retry")
        return winner

    def _key(self, org_id: str, key_id: str) -> AESGCM:
        # The hit path takes no lock: a dict read is atomic, and entries are replaced, never
        # changed in place. Eviction is oldest-inserted first (an entry is re-inserted when it
        # expires), which bounds the cache without a write on every read.
        now = self._clock()
        hit = self._keys.get((org_id, key_id))
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise _destroyed(org_id)
            return hit[1]
        stored = self.store.get_encryption_key(org_id, key_id)
        if stored is None:
            raise DecryptionFailed(
                f"a value of org {org_id!r} names encryption key {key_id[:64]!r}, which the org"
                " does not have: it was moved from another org or database",
                hint="restore the row from a backup",
            )
        try:
            aead: AESGCM | None = _aesgcm(unwrap_data_key(self.master, stored))
        except KeyDestroyed:
            aead = None
        if self._cacheable(stored.id):
            with self._lock:
                self._put((org_id, key_id), now, aead)
        if aead is None:
            raise _destroyed(org_id)
        return aead

    def _cacheable(self, key_id: str) -> bool:
        """False for a key this codec made in a transaction that may still roll back."""
        if key_id not in self._unconfirmed:
            return True
        if self.store.in_transaction():
            return False
        with self._lock:
            self._unconfirmed.discard(key_id)  # seen from outside a transaction: committed
        return True

    def _put(self, slot: tuple[str, str], now: float, aead: AESGCM | None) -> None:
        self._keys[slot] = (now + self.ttl, aead)
        self._keys.move_to_end(slot)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        if len(self._active) > self.max_keys:
            self._active.clear()

    def forget(self, org_id: str) -> None:
        """Drop the org's cached keys: after a rotation or a destroy, this process uses the
        store's state at once (other processes within the cache TTL)."""
        with self._lock:
            self._active.pop(org_id, None)
            for slot in [s for s in self._keys if s[0] == org_id]:
                del self._keys[slot]


def attach_codec(settings: Settings, store: WrappedKeyStore, *, check: bool = True) -> None:
    """Make ``store`` seal tenant columns with a codec built from ``settings`` (ConfigError
    without a usable master key). With ``check``, refuse a master key other than the one that
    wrapped the keys already in the database (the store must be migrated)."""
    master = load_master_key(settings)
    if check:
        check_master_key(store, master)
    store.codec = EnvelopeCodec(store, master, ttl=settings.encryption.key_cache_ttl)


__all__ = [
    "DecryptionFailed",
    "EnvelopeCodec",
    "MasterKey",
    "attach_codec",
    "check_master_key",
    "load_master_key",
    "make_key",
    "parse_master_key",
    "unwrap_data_key",
]
