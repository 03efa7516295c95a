"""The Ed25519 key that signs audit checkpoints.

The key lives in a file outside the database (``AGENT_SDK_AUDIT_SIGNING_KEY``, by default
``<data dir>/audit-signing.key``): someone who can write the database can rewrite the log and
recompute every hash, but without this file cannot sign a checkpoint that vouches for the
rewrite. Give verifiers the public key (:meth:`CheckpointSigner.public_key_pem`); they need
nothing else.

``cryptography`` is imported inside the functions: it costs tens of milliseconds, and only the
code paths that sign or verify pay for it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from agent_sdk.audit_anchor import CheckpointVerifier
from agent_sdk.errors import BackendUnavailable, ConfigError
from agent_sdk.private_files import ensure_private_dir

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
    )

_HINT = "set AGENT_SDK_AUDIT_SIGNING_KEY to the PEM file of an Ed25519 private key"


class CheckpointSigner(CheckpointVerifier):
    """Signs checkpoints with the private key of one key file."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        super().__init__(private_key.public_key())
        self._private_key = private_key

    @classmethod
    def load(cls, path: Path, *, create: bool = True) -> CheckpointSigner:
        """The key in ``path``; with ``create``, a new one if the file does not exist yet.

        Raises ConfigError for a file that is not an Ed25519 key, BackendUnavailable when the
        file cannot be read or created, and FileNotFoundError when it is missing and ``create``
        is False.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if not create:
                raise
            data = _create_key_file(path)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot read the audit signing key {path}: {exc.strerror}", hint=_HINT
            ) from exc
        return cls(_parse_private_key(data, path))

    def sign(self, payload: bytes) -> str:
        """The base64 Ed25519 signature of ``payload``."""
        return base64.b64encode(self._private_key.sign(payload)).decode("ascii")

    def public_key_pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pem = self.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return pem.decode("ascii")


def _parse_private_key(data: bytes, path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key: {exc}", hint=_HINT) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", hint=_HINT)
    return key


def _create_key_file(path: Path) -> bytes:
    """Write a new key to ``path`` (mode 0600) unless another process got there first.

    The key is written in full to a temporary file created with O_EXCL, then hard-linked to
    its name: a link never replaces an existing file, so when several processes start at once
    exactly one key wins, and nobody ever reads a half-written one. Every loser reads the
    winner's key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        ensure_private_dir(path.parent)
        _write_new(tmp, pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # A filesystem without hard links: O_EXCL on the name itself still lets only one
            # process create it (a concurrent reader could then see it half-written).
            try:
                _write_new(path, pem)
            except FileExistsError:
                return path.read_bytes()
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot create the audit signing key {path}: {exc.strerror}", hint=_HINT
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return pem


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["CheckpointSigner"]
