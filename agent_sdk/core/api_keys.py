"""API keys: create, list, show, rotate, revoke, and authenticate a request's key.

Lifecycle of one key id::

    create ──► active ──► rotate (new secret, same id; the old one works for the grace period)
                 │  └───► expires_at passes ──► refused
                 └──────► revoke ──► refused at once, and never rotated back to life

The token is returned once, by ``create`` and ``rotate``; the store keeps only
``keyed_hash(pepper, secret)``. Every refusal of ``authenticate`` is the same
AuthenticationError("invalid API key"), so a caller cannot tell a wrong secret from a revoked,
expired or unknown key.

``create``, ``rotate`` and ``revoke`` trust their caller (the bootstrap, or a test); every edge
calls the ``*_as`` forms with the principal it acts for (an API key or a JWT over HTTP, the local
operator in the CLI), which enforce delegation first: nobody hands out, or takes the token of, a
scope they do not hold, and a key with an IP allowlist makes no key that reaches further. Each
refusal is audited in the org it was aimed at.
"""

from __future__ import annotations

import builtins
import contextlib
import hmac
import ipaddress
import math
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import SYSTEM, Actor, audit_action
from agent_sdk.errors import (
    AuthenticationError,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    PermissionDenied,
)
from agent_sdk.records import ApiKey, Page, Principal
from agent_sdk.security import api_key_secrets as keys
from agent_sdk.security.scopes import ADMIN_PLATFORM, ROLES, SCOPES, check_grant, scopes_for
from agent_sdk.security.verified_keys import Verified, VerifiedKeys, fingerprint
from agent_sdk.times import iso

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.store.api_keys import KeyStore

MAX_NAME_LENGTH = 100
MAX_GRACE_SECONDS = 30 * 24 * 3600
# A key's rate limit: far above any real one, and small enough for every store and for the
# shared limiter's arithmetic (a 40-digit burst used to reach the database driver).
MAX_RATE = 1_000_000.0
MAX_BURST = 1_000_000
# last_used_at is a hint for people ("is this key still in use?"), not an audit record: writing
# it at most once a minute per key keeps authentication free of writes in the common case.
TOUCH_INTERVAL = timedelta(seconds=60)
BOOTSTRAP = "bootstrap"
CUSTOM_ROLE = "custom"


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid() -> AuthenticationError:
    return AuthenticationError(
        "invalid API key", hint="check the key, or ask an admin of the org for a new one"
    )


class KeyService:
    def __init__(
        self,
        settings: Settings,
        store: KeyStore,
        *,
        audit: AuditService | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit  # when set, create/rotate/revoke record themselves in the same txn
        self._clock = clock  # injectable, so tests can step through grace periods and expiry
        self._verified = VerifiedKeys()  # tokens verified by this process (see authenticate)

    @cached_property
    def pepper(self) -> bytes:
        # Read once per service: it is a file read (or a creation) and never changes while the
        # process runs.
        return keys.load_pepper(self.settings)

    # -- admin operations ----------------------------------------------------------------------
    def create(
        self,
        org_id: str,
        *,
        name: str,
        role: str = "viewer",
        scopes: Sequence[str] | None = None,
        expires_at: str | datetime | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
        created_by: str | None = None,
        actor: Actor | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token, which is shown this once and cannot be read back.

        Explicit ``scopes`` replace the role's; the key's role is then recorded as ``custom``
        (unless they equal the role's set), so a listing never shows a role the key does not have.
        """
        now = self._clock()
        granted = scopes_for(role, scopes)
        key_id, token = keys.generate()
        key = ApiKey(
            id=key_id,
            org_id=org_id,
            name=_check_name(name),
            prefix_display=keys.display_prefix(key_id),
            last4=token[-4:],
            # admin:platform widens where a key acts, not what it does: an admin with it is
            # still shown as an admin.
            role=role if granted - {ADMIN_PLATFORM} == ROLES[role] else CUSTOM_ROLE,
            scopes=sorted(granted, key=SCOPES.index),
            created_at=iso(now),
            created_by=_check_name(
                created_by if created_by is not None else (actor or SYSTEM).subject,
                what="created_by",
            ),
            expires_at=_check_expiry(expires_at, now),
            rate_per_second=_check_rate(rate_per_second),
            burst=_check_burst(burst),
            ip_allowlist=_check_cidrs(ip_allowlist),
        )
        with self.store.transaction():
            self.store.insert_api_key(key, self._hash(token))
            self._record(org_id, actor, "keys.create", key)
        return key, token

    # -- as a principal (the delegation rule) ---------------------------------------------------
    def create_as(
        self,
        principal: Principal,
        org_id: str,
        *,
        name: str,
        role: str = "viewer",
        scopes: Sequence[str] | None = None,
        expires_at: str | datetime | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
        actor: Actor | None = None,
    ) -> tuple[ApiKey, str]:
        """:meth:`create` for ``principal``, who may grant only scopes it holds (a role only if
        it holds all of the role's). A principal with an IP allowlist passes it on: the new key
        gets the same one, or a narrower one it names, never a wider one or none at all."""
        granted = scopes_for(role, scopes)  # InvalidInput for an unknown role or scope first
        allowlist = _check_cidrs(ip_allowlist)
        try:
            check_grant(principal.scopes, granted)
            if principal.ip_allowlist:
                allowlist = _narrower(allowlist, principal.ip_allowlist)
        except PermissionDenied as exc:
            requested = sorted(granted, key=SCOPES.index)
            self._refused(org_id, actor, "keys.create", None, exc, requested=requested)
            raise
        return self.create(
            org_id,
            name=name,
            role=role,
            scopes=scopes,
            expires_at=expires_at,
            rate_per_second=rate_per_second,
            burst=burst,
            ip_allowlist=allowlist,
            actor=actor,
        )

    def rotate_as(
        self,
        principal: Principal,
        org_id: str,
        key_id: str,
        *,
        grace_seconds: float = 0,
        actor: Actor | None = None,
    ) -> tuple[ApiKey, str]:
        """:meth:`rotate` for ``principal``. Rotation hands the caller the key's new token, so
        it is a grant of the key's scopes and reach: the caller must hold every scope of the key
        and, if it has an IP allowlist, the key's allowlist must lie within it. The key keeps its
        scopes, role, limits and allowlist: rotation changes the secret and nothing else."""
        self._check_hold(principal, org_id, key_id, "keys.rotate", "rotate a key holding", actor)
        return self.rotate(org_id, key_id, grace_seconds=grace_seconds, actor=actor)

    def revoke_as(
        self, principal: Principal, org_id: str, key_id: str, *, actor: Actor | None = None
    ) -> ApiKey:
        """:meth:`revoke` for ``principal``, who must hold every scope of the key: an org admin
        may not lock the platform operator out by revoking a key wider than its own."""
        self._check_hold(principal, org_id, key_id, "keys.revoke", "revoke a key holding", actor)
        return self.revoke(org_id, key_id, actor=actor)

    def _check_hold(
        self,
        principal: Principal,
        org_id: str,
        key_id: str,
        action: str,
        act: str,
        actor: Actor | None,
    ) -> None:
        key = self.store.get_api_key(org_id, key_id)  # NotFound first, as for any other caller
        try:
            check_grant(principal.scopes, key.scopes, act=act)
            if action == "keys.rotate" and principal.ip_allowlist:
                if not key.ip_allowlist:
                    raise PermissionDenied(
                        f"API key {key.id!r} has no IP allowlist, and this credential is limited "
                        "to " + ", ".join(principal.ip_allowlist) + ", so it may not rotate it",
                        hint="rotate it with a credential without an IP allowlist",
                    )
                _narrower(key.ip_allowlist, principal.ip_allowlist)
        except PermissionDenied as exc:
            self._refused(org_id, actor, action, key.id, exc)
            raise

    def _refused(
        self,
        org_id: str,
        actor: Actor | None,
        action: str,
        target: str | None,
        exc: PermissionDenied,
        **details: Any,
    ) -> None:
        # A refusal is recorded on its own (there is no change to commit it with), in the org
        # the request was aimed at: the caller was admitted there, so it may act in it.
        if self.audit is not None:
            audit_action(
                self.audit,
                org_id,
                actor,
                action,
                target,
                outcome="denied",
                details={"reason": exc.message, **details},
            )

    def _record(self, org_id: str, actor: Actor | None, action: str, key: ApiKey) -> None:
        if self.audit is not None:
            details = {"name": key.name, "role": key.role, "scopes": key.scopes}
            audit_action(self.audit, org_id, actor, action, key.id, details=details)

    def get(self, org_id: str, key_id: str) -> ApiKey:
        return self.store.get_api_key(org_id, key_id)

    def list(self, org_id: str, *, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        return self.store.list_api_keys(org_id, limit=limit, cursor=cursor)

    def rotate(
        self,
        org_id: str,
        key_id: str,
        *,
        grace_seconds: float = 0,
        actor: Actor | None = None,
    ) -> tuple[ApiKey, str]:
        """A new secret for the same key id (so its limits and history stay attached). The old
        secret keeps working for ``grace_seconds`` (default: not at all); a second rotation
        within the grace period ends the first one's grace at once."""
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:  # NaN fails this too
            raise InvalidInput(
                f"grace period must be 0 to {MAX_GRACE_SECONDS} seconds, not {grace_seconds!r}"
            )
        _ = self.pepper  # before the transaction: it may read or create a file
        now = self._clock()
        with self.store.transaction():
            key = self.store.get_api_key(org_id, key_id)  # NotFound for another org's key too
            self._check_rotatable(key, now)
            _, token = keys.generate(key.id)
            fields: dict[str, Any] = {
                "secret_hash": self._hash(token),
                "last4": token[-4:],
                "rotated_at": iso(now),
                "previous_hash": None,
                "previous_valid_until": None,
            }
            if grace_seconds > 0:
                # The org was checked above; this read is only for the hash being replaced.
                found = self.store.find_api_key_for_auth(key_id)
                if found is not None:
                    fields["previous_hash"] = found[1]
                    fields["previous_valid_until"] = iso(now + timedelta(seconds=grace_seconds))
            rotated = self.store.update_api_key(org_id, key_id, **fields)
            self._record(org_id, actor, "keys.rotate", rotated)
        # The generation has moved for every process; here the entries need not wait for it.
        self._verified.forget(key_id)
        return rotated, token

    def _check_rotatable(self, key: ApiKey, now: datetime) -> None:
        if key.revoked_at is not None:
            raise Conflict(
                f"API key {key.id!r} is revoked and cannot be rotated",
                hint="create a new key instead",
            )
        if key.expires_at is not None and key.expires_at <= iso(now):
            raise Conflict(
                f"API key {key.id!r} has expired and cannot be rotated",
                hint="create a new key instead",
            )

    def revoke(self, org_id: str, key_id: str, *, actor: Actor | None = None) -> ApiKey:
        """Refuse the key from now on (the next request fails). Revoking twice keeps the first
        time."""
        with self.store.transaction():
            key = self.store.get_api_key(org_id, key_id)
            if key.revoked_at is not None:
                return key
            revoked = self.store.update_api_key(
                org_id,
                key_id,
                revoked_at=iso(self._clock()),
                previous_hash=None,
                previous_valid_until=None,
            )
            self._record(org_id, actor, "keys.revoke", revoked)
        self._verified.forget(key_id)
        return revoked

    def ensure_bootstrap_key(self, org_id: str) -> str | None:
        """Create the org's first key, with ``API_KEY_ROLE`` / ``API_KEY_SCOPES``, if the org has
        none (revoked keys count: revoking every key must not summon a new admin key on the next
        start). Returns the token when it was created now, else None.

        With the default role ``admin`` and no explicit scopes the key also gets
        ``admin:platform``: it belongs to whoever runs the deployment, who must be able to create
        the first other orgs. ``API_KEY_SCOPES`` states the exact set instead."""
        role = self.settings.auth.api_key_role
        scopes = list(self.settings.auth.api_key_scopes) or None
        if scopes is None and role == "admin":
            scopes = [*ROLES["admin"], ADMIN_PLATFORM]
        _ = self.pepper
        with self.store.transaction():
            # The write lock of the transaction settles which of two starting servers creates it.
            if self.store.list_api_keys(org_id, limit=1).items:
                return None
            _, token = self.create(
                org_id,
                name=BOOTSTRAP,
                role=role,
                scopes=scopes,
                created_by=BOOTSTRAP,
            )
        return token

    # -- the hot path --------------------------------------------------------------------------
    def authenticate(self, token: str) -> Principal:
        """The principal of ``token``.

        A token this process verified before costs one read of the store's API-key generation
        and a look at the clock: the entry is used only if no key has changed since (revoked,
        rotated, its scopes or limits edited, in any process), and never at or after its
        expiry. Any other token gets the full check: checksum, HMAC, one primary-key read.
        """
        fp = fingerprint(token)
        known = self._verified.get(fp)
        generation = self.store.api_key_generation() if known is not None else None
        if known is not None and generation == known.generation:
            now = self._clock()
            if known.until is not None and now >= known.until:
                raise _invalid()
            if now >= known.touch_due:
                known.touch_due = now + TOUCH_INTERVAL
                self._touch(known.principal, now)
            return known.principal
        try:
            key_id, secret = keys.parse(token)  # a malformed token costs no database read
        except AuthenticationError:
            raise _invalid() from None
        if known is None:
            # Read before the key's row: a change committed after this read moves the generation
            # past the one stored with the entry, so the entry is not used again.
            generation = self.store.api_key_generation()
        principal, entry = self._verify(key_id, secret, generation)
        if entry is not None:
            self._verified.put(fp, entry)
        return principal

    def _verify(
        self, key_id: str, secret: str, generation: int | None
    ) -> tuple[Principal, Verified | None]:
        digest = keys.keyed_hash(self.pepper, secret)
        found = self.store.find_api_key_for_auth(key_id)
        if found is None:
            raise _invalid()
        key, current, previous, previous_until = found
        now = self._clock()
        now_iso = iso(now)
        until = key.expires_at
        if not hmac.compare_digest(digest, current):
            # The secret replaced by the last rotation, until its grace period ends.
            if (
                previous is None
                or previous_until is None
                or not now_iso < previous_until
                or not hmac.compare_digest(digest, previous)
            ):
                raise _invalid()
            until = previous_until if until is None else min(until, previous_until)
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now_iso):
            raise _invalid()
        principal = Principal(
            subject=f"api_key:{key.id}",
            org_id=key.org_id,
            scopes=frozenset(key.scopes),
            kind="api_key",
            key_id=key.id,
            rate_per_second=key.rate_per_second,
            burst=key.burst,
            ip_allowlist=tuple(key.ip_allowlist),
        )
        touch_due = now
        if key.last_used_at is not None:
            touch_due = datetime.fromisoformat(key.last_used_at) + TOUCH_INTERVAL
        if now >= touch_due:
            touch_due = now + TOUCH_INTERVAL
            self._touch(principal, now)
        if generation is None:  # a store without the counter: nothing may be remembered
            return principal, None
        expires = None if until is None else datetime.fromisoformat(until)
        return principal, Verified(principal, generation, expires, touch_due)

    def _touch(self, principal: Principal, now: datetime) -> None:
        # Advisory: a busy database must not turn a valid key into a failed request.
        with contextlib.suppress(BackendUnavailable):
            self.store.touch_api_key(principal.key_id or "", iso(now))

    def _hash(self, token: str) -> str:
        return keys.keyed_hash(self.pepper, keys.parse(token)[1])


# -- input checks -------------------------------------------------------------------------------
def _check_name(name: str, *, what: str = "name") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} must be 1 to {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        # Names are printed in tables and logs, where a newline or an escape code would forge
        # lines or colours.
        raise InvalidInput(f"{what} must not contain control characters")
    return name


def _check_expiry(value: str | datetime | None, now: datetime) -> str | None:
    if value is None:
        return None
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"expires_at {value!r} is not an ISO-8601 time",
                hint="for example 2030-01-31 or 2030-01-31T12:00:00Z",
            ) from None
    if not isinstance(when, datetime):
        raise InvalidInput("expires_at must be an ISO-8601 time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # a time without an offset is taken as UTC
    if when <= now:
        raise InvalidInput(f"expires_at {value!s} is not in the future")
    return iso(when)


def _check_rate(value: float | None) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_RATE
    ):
        raise InvalidInput(
            f"rate_per_second must be a positive number up to {MAX_RATE:g}, not {value!r}"
        )
    return float(value)


def _check_burst(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BURST:
        raise InvalidInput(f"burst must be an integer from 1 to {MAX_BURST}, not {value!r}")
    return value


def _narrower(wanted: builtins.list[str], limit: Sequence[str]) -> builtins.list[str]:
    """``wanted`` if every network of it lies inside one of ``limit`` (nothing wanted: exactly
    ``limit``); else PermissionDenied naming the first network outside."""
    if not wanted:
        return builtins.list(limit)
    outer = [ipaddress.ip_network(n, strict=False) for n in limit]
    for raw in wanted:
        net = ipaddress.ip_network(raw, strict=False)
        # subnet_of is only defined between networks of one IP version.
        if not any(net.version == o.version and net.subnet_of(o) for o in outer):  # type: ignore[arg-type]
            raise PermissionDenied(
                f"the network {raw} is outside this credential's IP allowlist "
                f"({', '.join(limit)}), so it may not hand out a key that reaches it",
                hint="give the new key networks inside the allowlist, or none to inherit it",
            )
    return wanted


def _check_cidrs(values: Sequence[str] | None) -> builtins.list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: dict[str, None] = {}
    for raw in values:
        try:
            # strict=False: "10.0.0.7/8" means the 10.0.0.0/8 network, as people write it.
            out[str(ipaddress.ip_network(raw.strip(), strict=False))] = None
        except (ValueError, TypeError, AttributeError):
            raise InvalidInput(
                f"{raw!r} is not an IP network",
                hint="use CIDRs such as 203.0.113.0/24, 2001:db8::/32 or a single address",
            ) from None
    return builtins.list(out)


__all__ = ["KeyService", "iso"]
