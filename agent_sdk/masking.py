"""One way to show a URL that may carry credentials, and to keep them out of any other text.

Every URL the CLI, the server, a store or a queue prints goes through :func:`mask_url`: the
password of its userinfo and the values of secret-looking query or fragment parameters
(``password``, ``token``, ``api_key``, ``secret``, ``sasl.password``, ...) become ``***``. A
driver may still echo part of a URL in its own words, so messages built from driver errors go
through :func:`scrub` with the secrets :func:`url_secrets` finds in that URL.

Plain string work, no ``urlsplit``: a malformed URL (an unclosed ``[``, a bad port) must be
masked too, and ``urlsplit`` raises on those before the password is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"

# A scheme followed by "//" (RFC 3986); a string without it is taken as an authority first
# (``user:password@host:9092``, as Kafka's bootstrap servers are written).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# userinfo with a password. The password runs to the last "@" before the host (a password with
# an unencoded "@", "/" or "#" is still masked whole; a path holding "@" is masked too much,
# which is the safe way to be wrong).
_USERINFO = re.compile(r"(?P<user>[^:@/?#]*):(?P<password>.*)@(?P<host>[^@]*?)(?=[/?#]|$)", re.S)
# Parameter names whose values are credentials: any name containing one of these words.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "signature")
_SECRET_NAMES = frozenset({"sig", "pw"})


def _is_secret_name(name: str) -> bool:
    low = unquote(name).lower()
    return any(w in low for w in _SECRET_WORDS) or low in _SECRET_NAMES


def _split(url: str) -> tuple[str, str]:
    """(``scheme://`` or "", the rest)."""
    m = _SCHEME.match(url)
    head = m.group(0) if m else ""
    return head, url[len(head) :]


def _mask_params(text: str) -> str:
    """``a=1&password=x`` -> ``a=1&password=***``; a value that is itself a URL is masked too."""
    items = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if eq and value and _is_secret_name(name):
            value = MASK
        elif eq and "@" in unquote(value) and "://" in unquote(value):
            value = quote(mask_url(unquote(value)), safe=":/@*,;")
        items.append(f"{name}{eq}{value}")
    return "&".join(items)


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo and secret parameter values shown as ``***``.

    >>> mask_url("postgresql://app:s3cret@db:5432/agents?sslmode=require&password=x")
    'postgresql://app:***@db:5432/agents?sslmode=require&password=***'
    """
    head, rest = _split(str(url))
    m = _USERINFO.match(rest)
    if m is not None:
        rest = f"{m.group('user')}:{MASK}@{m.group('host')}" + rest[m.end() :]
    rest, hash_, fragment = rest.partition("#")
    base, qmark, query = rest.partition("?")
    if qmark:
        base += qmark + _mask_params(query)
    if hash_:
        base += hash_ + _mask_params(fragment)
    return head + base


def url_secrets(url: str) -> tuple[str, ...]:
    """Every spelling (as written, and percent-decoded) of the credentials in ``url``: what
    :func:`scrub` must remove from a driver's message about it."""
    head, rest = _split(str(url))
    found: list[str] = []
    m = _USERINFO.match(rest)
    if m is not None:
        found.append(m.group("password"))
        rest = rest[m.end() :]
    for part in re.split(r"[?#]", rest)[1:]:
        for item in part.split("&"):
            name, eq, value = item.partition("=")
            if eq and _is_secret_name(name):
                found.append(value)
            elif eq and "://" in unquote(value):
                found.extend(url_secrets(unquote(value)))
    spellings = {s for v in found for s in (v, unquote(v)) if s}
    return tuple(sorted(spellings, key=len, reverse=True))  # longest first: no partial leftovers


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


__all__ = ["MASK", "mask_url", "scrub", "url_secrets"]
