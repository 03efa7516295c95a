"""Who is calling, in which org, and whether this call may go ahead.

Every route of the server goes through :meth:`AuthService.authenticate` and
:meth:`AuthService.authorize`, in this order:

1. **authenticate** the bearer credential: an API key (``asdk_...``, checksum first, then one
   keyed-hash compare) or, with ``AGENT_SDK_JWT_ENABLED``, an HS256 JWT. Failure: 401.
2. **org**: ``X-Org-Id`` or the credential's own org. Naming another org without
   ``admin:platform`` is 403; an org that does not exist is 404.
3. **scope**: the route's scope must be held. Failure: 403.
4. **network**: the key's IP allowlist, with ``X-Forwarded-For`` believed only from
   ``AGENT_SDK_TRUSTED_PROXIES``. Failure: 403.
5. **rate**: the key's GCRA limit, in memory or shared through Redis. Failure: 429.

Limits belong to the key id, so a rotated key keeps its bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from agent_sdk.errors import AuthenticationError, PermissionDenied, RateLimited
from agent_sdk.records import Principal
from agent_sdk.security.network import ip_allowed
from agent_sdk.security.scopes import require

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.api_keys import KeyService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.security.jwt import JwtVerifier
    from agent_sdk.security.ratelimit import Decision, RateLimiter


@dataclass(frozen=True)
class Admission:
    principal: Principal
    org_id: str
    rate: Decision | None = None


def _refused() -> AuthenticationError:
    return AuthenticationError(
        "missing or invalid credentials",
        hint="send 'Authorization: Bearer <API key>'; the CLI reads AGENT_SDK_API_KEY",
    )


class AuthService:
    def __init__(self, settings: Settings, keys: KeyService, orgs: OrgService) -> None:
        self.settings = settings
        self.keys = keys
        self.orgs = orgs

    @cached_property
    def jwt(self) -> JwtVerifier:
        from agent_sdk.security.jwt import JwtVerifier

        return JwtVerifier(self.settings)

    @cached_property
    def limiter(self) -> RateLimiter:
        from agent_sdk.security.ratelimit import open_rate_limiter

        return open_rate_limiter(self.settings.redis_url)

    def check_config(self) -> None:
        """Fail at start, not on the first request: a short JWT secret, a bad Redis URL."""
        _ = self.jwt

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a bearer credential. A missing, malformed, unknown, wrong, revoked
        or expired API key all get the same answer, so a caller learns nothing about which."""
        if token and token.startswith("asdk_"):
            try:
                return self.keys.authenticate(token)
            except AuthenticationError:
                raise _refused() from None
        if token and self.jwt.enabled and token.count(".") == 2:
            from agent_sdk.security.scopes import SCOPES

            claims = self.jwt.verify(token)
            # Unknown scope names in a token are ignored rather than refused: an issuer may
            # serve several services, and only ours are meaningful here.
            return Principal(
                subject=f"jwt:{claims.sub}",
                org_id=claims.org_id,
                scopes=frozenset(s for s in claims.scopes if s in SCOPES),
                kind="jwt",
            )
        raise _refused()

    def resolve_org(self, principal: Principal, requested: str | None) -> str:
        org_id = requested or principal.org_id
        if not principal.acts_in(org_id):
            raise PermissionDenied(
                f"this credential belongs to org {principal.org_id!r} and may not act in "
                f"org {org_id!r}",
                hint="only a key with the admin:platform scope acts across orgs",
            )
        self.orgs.get(org_id)  # NotFound for an org that does not exist
        return org_id

    def authorize(
        self,
        principal: Principal,
        *,
        scope: str | None,
        requested_org: str | None = None,
        client_ip: str | None = None,
    ) -> Admission:
        """Steps 2-5 for an authenticated principal; ``scope`` None admits any principal."""
        org_id = self.resolve_org(principal, requested_org)
        if scope is not None:
            require(principal.scopes, scope)
        if principal.ip_allowlist and not ip_allowed(client_ip, principal.ip_allowlist):
            raise PermissionDenied(
                f"requests from {client_ip or 'an unknown address'} are not allowed for this key",
                hint="the key has an IP allowlist",
            )
        return Admission(principal, org_id, self._limit(principal))

    def _limit(self, principal: Principal) -> Decision | None:
        rate, burst = principal.rate_per_second, principal.burst
        if not rate or principal.key_id is None:
            return None
        burst = burst or max(1, int(rate))
        decision = self.limiter.hit(f"key:{principal.key_id}", rate=rate, burst=burst)
        if not decision.allowed:
            raise RateLimited(
                f"rate limit of this key exceeded ({rate:g}/s, burst {burst})",
                decision,
                rate=rate,
                burst=burst,
            )
        return decision
