"""Where the CLI keeps API keys, and which one a call uses.

Lookup order for a server URL, first found wins:

1. ``AGENT_SDK_API_KEY`` (or the file ``AGENT_SDK_API_KEY_FILE`` names, or ``api_key`` in a
   config file): CI sets it, and it never touches disk;
2. the OS keyring (service ``agent-sdk``, user name = the server URL), written by ``auth login``;
3. ``<config dir>/credentials.json`` (mode 0600), where ``auth login`` falls back when no keyring
   backend is usable, which is the usual case on a headless server;
4. for the server that ``agent-sdk up`` runs on this machine, its bootstrap key
   (``<data dir>/admin-token``).

``credentials.json`` is also the index of the keyring: ``auth login`` records ``{"keyring":
true}`` (no secret) for a URL whose key it put in the keyring. keyring is imported only for
such a URL: it loads its backends through entry points, which costs about 200 ms on every call
that asks it, more than the whole start-up of the CLI. (A key put in the keyring by hand,
without ``auth login``, is therefore not looked for.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import ConfigError

if TYPE_CHECKING:
    from types import ModuleType

    from agent_sdk.config import Settings

SERVICE = "agent-sdk"
FILE_NAME = "credentials.json"
ENV_VAR = "AGENT_SDK_API_KEY"

# Sources, as `auth status` names them.
ENV = "env"
CONFIG = "config"
KEYRING = "keyring"
FILE = "file"
BOOTSTRAP = "bootstrap"


class Credential:
    """A credential and where it came from (``source`` is one of the names above; ``where`` is
    the variable, keyring service or file it was read from)."""

    __slots__ = ("token", "source", "where")

    def __init__(self, token: str, source: str, where: str) -> None:
        self.token = token
        self.source = source
        self.where = where

    def describe(self) -> dict[str, str]:
        """What may be shown about it: never the secret."""
        return {"source": self.source, "where": self.where, "key": mask(self.token)}


def mask(token: str) -> str:
    """``asdk_<id>_…`` plus the last four characters, as key listings show a key; a credential of
    another kind shows only its last four."""
    from agent_sdk import api_key_format

    try:
        return api_key_format.display(token)
    except Exception:  # not one of our keys (a JWT, or a mangled paste)
        return "…" + token[-4:] if len(token) > 12 else "…"


def normalize_url(url: str) -> str:
    """The form a URL is stored under: scheme and host lower-case, no trailing slash, and any
    password in it masked (the URL is a keyring user name and a key of credentials.json)."""
    from urllib.parse import urlsplit, urlunsplit

    from agent_sdk.masking import mask_url

    url = mask_url(url.strip())
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rstrip("/")
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


# -- the OS keyring -------------------------------------------------------------------------------


def _keyring() -> ModuleType | None:
    """The keyring module when a real backend is configured, else None (no keyring package, the
    ``fail`` backend of a machine without a keyring service, or the ``null`` backend that
    disables it on purpose)."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    return keyring


def keyring_available() -> bool:
    return _keyring() is not None


def keyring_get(url: str) -> str | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        value = kr.get_password(SERVICE, normalize_url(url))
    except Exception:  # a locked or unreachable keyring is a keyring we cannot use
        return None
    return value or None


def keyring_set(url: str, token: str) -> str | None:
    """Store ``token``; None when it is stored, else why it could not be."""
    kr = _keyring()
    if kr is None:
        return "no OS keyring backend is available"
    try:
        kr.set_password(SERVICE, normalize_url(url), token)
    except Exception as exc:
        return f"the OS keyring refused it ({type(exc).__name__}: {exc})"
    return None


def keyring_delete(url: str) -> bool:
    kr = _keyring()
    if kr is None:
        return False
    try:
        if kr.get_password(SERVICE, normalize_url(url)) is None:
            return False
        kr.delete_password(SERVICE, normalize_url(url))
    except Exception:
        return False
    return True


# -- the 0600 file --------------------------------------------------------------------------------


def credentials_path() -> Path:
    from agent_sdk.config import user_config_dir

    return user_config_dir() / FILE_NAME


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        servers = data["servers"]
        if not isinstance(servers, dict):
            raise TypeError("servers is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a credentials file ({exc})",
            hint="fix it, or delete it and run `agent-sdk auth login` again",
        ) from None
    result: dict[str, Any] = data
    return result


def _entry(url: str) -> dict[str, Any]:
    entry = _read_file(credentials_path()).get("servers", {}).get(normalize_url(url))
    return entry if isinstance(entry, dict) else {}


def file_get(url: str) -> str | None:
    token = _entry(url).get("api_key")
    return token if isinstance(token, str) and token else None


def in_keyring(url: str) -> bool:
    """Whether ``auth login`` put the key of ``url`` in the keyring."""
    return _entry(url).get("keyring") is True


def _write_file(path: Path, data: dict[str, Any]) -> None:
    """Replace the file atomically; the new one is 0600 from its first byte."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover file
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _set_entry(url: str, entry: dict[str, Any]) -> Path:
    path = credentials_path()
    data = _read_file(path) or {"version": 1, "servers": {}}
    data["servers"][normalize_url(url)] = entry
    _write_file(path, data)
    return path


def file_set(url: str, token: str) -> Path:
    return _set_entry(url, {"api_key": token})


def mark_keyring(url: str) -> Path:
    """Record that the key of ``url`` is in the keyring (replacing a key in the file)."""
    return _set_entry(url, {"keyring": True})


def file_delete(url: str) -> bool:
    path = credentials_path()
    data = _read_file(path)
    if normalize_url(url) not in data.get("servers", {}):
        return False
    del data["servers"][normalize_url(url)]
    if data["servers"]:
        _write_file(path, data)
    else:
        path.unlink(missing_ok=True)
    return True


# -- lookup ---------------------------------------------------------------------------------------


def same_url(a: str, b: str) -> bool:
    return normalize_url(a) == normalize_url(b)


def find(settings: Settings, url: str, up_url: str | None) -> Credential | None:
    """The credential for ``url``, in the order of the module docstring. ``up_url`` is the URL
    of the server `agent-sdk up` runs on this machine, if one runs."""
    if settings.api_key:
        from agent_sdk.config import api_key_in_env

        if api_key_in_env():
            return Credential(settings.api_key, ENV, ENV_VAR)
        if settings.api_key_file:
            return Credential(settings.api_key, FILE, settings.api_key_file)
        return Credential(settings.api_key, CONFIG, "config file")
    entry = _entry(url)
    token = keyring_get(url) if entry.get("keyring") is True else None
    if token:
        return Credential(token, KEYRING, f"OS keyring, service {SERVICE!r}")
    token = entry.get("api_key")
    if isinstance(token, str) and token:
        return Credential(token, FILE, str(credentials_path()))
    if up_url is not None and same_url(url, up_url):
        try:
            token = settings.admin_token_path.read_text().strip()
        except OSError:
            token = ""
        if token:
            return Credential(token, BOOTSTRAP, str(settings.admin_token_path))
    return None
