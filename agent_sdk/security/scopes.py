"""Roles and scopes: what a credential may do.

A credential carries a set of scopes. A role is only a name for a set of scopes, resolved when a
key is created; explicit scopes replace the role's set rather than add to it, so a key never holds
more than what was written down for it.

==========  ====================================================================
Role        Scopes
==========  ====================================================================
viewer      ``runs:read``, ``sessions:read``
operator    ``runs:read``, ``sessions:read``, ``runs:write``
admin       ``runs:read``, ``sessions:read``, ``runs:write``, ``admin:keys``,
            ``admin:orgs``, ``admin:audit`` (all within the key's own org)
==========  ====================================================================

==================  ============================================================
Scope               Allows
==================  ============================================================
``runs:read``       list and show runs, read their events
``runs:write``      create, cancel and retry runs
``sessions:read``   list and show sessions
``admin:keys``      create, list, show, rotate and revoke the org's API keys
``admin:orgs``      read and manage the key's own org, erase its runs and sessions
``admin:audit``     read, export and verify the org's audit log
``admin:platform``  act in any org (``X-Org-Id``); never part of a role, only ever
                    given explicitly, e.g. ``API_KEY_SCOPES=admin:platform,...``
==================  ============================================================

``admin:platform`` widens *where* a key acts, not *what* it does there: a key with only
``admin:platform`` can name another org but still needs ``runs:read`` to read its runs.

**Delegation.** Whoever hands out rights hands out only rights it holds (:func:`check_grant`):
a new key's scopes, and the scopes of a key being rotated (rotation hands its caller that key's
token) or revoked, must all be held by the caller. So a role is granted only by a holder of
every scope of the role, and ``admin:platform`` only by a holder of ``admin:platform``.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_sdk.errors import InvalidInput, PermissionDenied

RUNS_READ = "runs:read"
RUNS_WRITE = "runs:write"
SESSIONS_READ = "sessions:read"
ADMIN_KEYS = "admin:keys"
ADMIN_ORGS = "admin:orgs"
ADMIN_AUDIT = "admin:audit"
ADMIN_PLATFORM = "admin:platform"

# In the order the docs and error hints list them.
SCOPES: tuple[str, ...] = (
    RUNS_READ,
    RUNS_WRITE,
    SESSIONS_READ,
    ADMIN_KEYS,
    ADMIN_ORGS,
    ADMIN_AUDIT,
    ADMIN_PLATFORM,
)
_KNOWN = frozenset(SCOPES)

_VIEWER = frozenset({RUNS_READ, SESSIONS_READ})
_OPERATOR = _VIEWER | {RUNS_WRITE}
_ADMIN = _OPERATOR | {ADMIN_KEYS, ADMIN_AUDIT, ADMIN_ORGS}

ROLES: dict[str, frozenset[str]] = {"viewer": _VIEWER, "operator": _OPERATOR, "admin": _ADMIN}


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The set of ``scopes``; InvalidInput names the first unknown one."""
    if isinstance(scopes, str):  # a lone "runs:read" would otherwise be split into letters
        scopes = [scopes]
    out = set()
    for raw in scopes:
        scope = raw.strip() if isinstance(raw, str) else raw
        if scope not in _KNOWN:
            raise InvalidInput(f"unknown scope {raw!r}", hint="known scopes: " + ", ".join(SCOPES))
        out.add(scope)
    return frozenset(out)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint="known roles: " + ", ".join(ROLES))
    return role


def scopes_for(role: str, scopes: Iterable[str] | None = None) -> frozenset[str]:
    """The scopes a key of ``role`` gets. Explicit ``scopes`` replace the role's set; None or an
    empty list (``API_KEY_SCOPES`` unset) keeps it."""
    check_role(role)
    explicit = parse_scopes(scopes) if scopes is not None else frozenset()
    return explicit or ROLES[role]


def missing_scopes(held: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The scopes of ``wanted`` that ``held`` lacks, in the order of :data:`SCOPES`."""
    have, want = frozenset(held), frozenset(wanted)
    return [s for s in SCOPES if s in want and s not in have]


def check_grant(held: Iterable[str], wanted: Iterable[str], *, act: str = "grant") -> None:
    """Raise PermissionDenied, naming what is lacking, unless ``held`` covers ``wanted``: the
    one delegation rule of every act that hands out rights (``act``: "grant", "rotate a key
    holding", ...)."""
    missing = missing_scopes(held, wanted)
    if not missing:
        return
    names = ", ".join(repr(s) for s in missing)
    plural = "s" if len(missing) > 1 else ""
    if ADMIN_PLATFORM in missing:
        hint = "only a credential holding admin:platform (the platform operator) may do this"
    else:
        hint = "ask an admin who holds it, or ask for fewer scopes"
    raise PermissionDenied(
        f"this credential lacks the scope{plural} {names}, so it may not {act} {names}",
        hint=hint,
    )


def require(principal_scopes: Iterable[str], needed: str) -> None:
    """Raise PermissionDenied unless ``needed`` is among ``principal_scopes``."""
    if needed not in principal_scopes:
        raise PermissionDenied(
            f"this key lacks the scope {needed!r}",
            hint="use a key whose role or scopes include it",
        )


__all__ = [
    "ADMIN_AUDIT",
    "ADMIN_KEYS",
    "ADMIN_ORGS",
    "ADMIN_PLATFORM",
    "ROLES",
    "RUNS_READ",
    "RUNS_WRITE",
    "SCOPES",
    "SESSIONS_READ",
    "check_grant",
    "check_role",
    "missing_scopes",
    "parse_scopes",
    "require",
    "scopes_for",
]
