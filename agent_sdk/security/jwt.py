"""HS256 bearer tokens (``AGENT_SDK_JWT_ENABLED=true``, ``AGENT_SDK_JWT_SECRET``).

The verifier accepts one algorithm, HS256, named by us and never taken from the token's header:
that closes ``alg: none`` and algorithm-confusion attacks. ``exp``, ``iat`` and ``sub`` are
required; issuer and audience must match the settings; ``exp``, ``nbf`` and ``iat`` are checked
with ``AGENT_SDK_JWT_LEEWAY`` seconds of clock skew. The three times must be JSON numbers
(RFC 7519's NumericDate): PyJWT turns a string ``"exp": "1999999999"`` into a number and a
boolean into 0 or 1, and we accept neither. A token may live at most
``AGENT_SDK_JWT_MAX_LIFETIME`` seconds (``exp - iat``), so a leaked or mis-issued token cannot
be valid for years. Tokens also carry the org (``org_id``) and
their scopes (``scope``, space-separated as in OAuth, and/or ``scopes``, a list).

Every refusal is an :class:`AuthenticationError` with a short reason (the server answers 401 with
``WWW-Authenticate``); no message ever contains the secret or the token.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sdk.config import env_name
from agent_sdk.errors import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from agent_sdk.config import Settings

ALGORITHM = "HS256"
# RFC 7518 3.2: an HMAC key at least as long as the hash output (256 bits).
MIN_SECRET_BYTES = 32
# Far above any real token; refuses megabytes of base64 before any decoding work.
MAX_TOKEN_CHARS = 8192
TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    sub: str
    org_id: str
    scopes: tuple[str, ...]
    exp: int  # seconds since the epoch


def _secret_bytes(settings: Settings) -> bytes:
    name = env_name("jwt_secret")
    if not settings.jwt.secret:
        raise ConfigError(
            f"{env_name('jwt_enabled')}=true needs {name}",
            hint=f"set {name} to at least {MIN_SECRET_BYTES} random bytes, "
            'e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    secret = settings.jwt.secret.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{name} is too short: HS256 needs at least {MIN_SECRET_BYTES} bytes",
            hint='generate one with python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    return secret


def _scopes(payload: dict[str, Any]) -> tuple[str, ...]:
    """Scopes from ``scope`` (a space-separated string) and ``scopes`` (a list of strings).
    An issuer may send both: both are its signed word, so the result is their union."""
    found: list[str] = []
    scope = payload.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise AuthenticationError("token scope claim is not a string")
        found.extend(scope.split())
    scopes = payload.get("scopes")
    if scopes is not None:
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise AuthenticationError("token scopes claim is not a list of strings")
        found.extend(s for s in scopes if s)
    return tuple(dict.fromkeys(found))  # de-duplicated, first-seen order


class JwtVerifier:
    """Verifies bearer tokens against the settings. Built once at start-up: with JWT enabled, a
    missing or short secret is a :class:`ConfigError` here, before the server takes traffic.
    With JWT disabled, :meth:`verify` refuses every token."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.jwt.enabled
        self._settings = settings
        self._secret = _secret_bytes(settings) if settings.jwt.enabled else None

    def verify(self, token: str) -> Claims:
        if self._secret is None:
            raise AuthenticationError("JWT bearer tokens are not enabled on this server")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError("invalid token")
        payload = self._decode(token, self._secret)
        self._check_times(payload)
        sub, org_id = payload.get("sub"), payload.get("org_id")
        if not sub:
            raise AuthenticationError("token has no sub claim")
        if not org_id:
            raise AuthenticationError("token has no org_id claim")
        if not isinstance(org_id, str):
            raise AuthenticationError("token org_id claim is not a string")
        return Claims(sub=sub, org_id=org_id, scopes=_scopes(payload), exp=int(payload["exp"]))

    def _check_times(self, payload: dict[str, Any]) -> None:
        """After PyJWT's checks, which coerce: the time claims are finite numbers (not strings,
        not booleans), and the token's lifetime is within the maximum."""
        for claim in TIME_CLAIMS:
            if claim not in payload:
                continue
            value = payload[claim]
            # (isfinite only on floats: a huge int would overflow converting to one.)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                raise AuthenticationError(f"token {claim} claim is not a number")
        lifetime = payload["exp"] - payload["iat"]
        limit = self._settings.jwt.max_lifetime
        # Both times come from the issuer's clock, so no leeway for skew; and written so that a
        # NaN limit would refuse every token rather than none.
        if not lifetime <= limit:
            raise AuthenticationError(
                f"token lifetime (exp - iat) exceeds the maximum of {limit:g} seconds",
            )

    def _decode(self, token: str, secret: bytes) -> dict[str, Any]:
        import jwt

        s = self._settings
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],  # pinned: the header's alg is never trusted
                options={"require": ["exp", "iat", "sub"]},
                audience=s.jwt.audience,
                issuer=s.jwt.issuer,
                leeway=s.jwt.leeway,
            )
        # Most specific first: several of these subclass each other.
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token has no {exc.claim} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthenticationError(
                f"token algorithm is not allowed (only {ALGORITHM})"
            ) from None
        except jwt.PyJWTError:
            # Bad signature, bad encoding, malformed claims: one answer, no detail to probe.
            raise AuthenticationError("invalid token") from None
        return payload

    def issue(
        self,
        sub: str,
        org_id: str,
        *,
        scopes: tuple[str, ...] | list[str] = (),
        ttl: float = 300.0,
        now: float | None = None,
        **extra: Any,
    ) -> str:
        """Mint a token these settings accept: for tests and documentation examples only (real
        tokens come from the identity provider sharing the secret). ``extra`` claims are added
        or override; an ``extra`` claim set to None is left out, to build invalid tokens."""
        import jwt

        iat = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "iss": self._settings.jwt.issuer,
            "aud": self._settings.jwt.audience,
            "sub": sub,
            "org_id": org_id,
            "iat": iat,
            "exp": iat + int(ttl),
        }
        if scopes:
            payload["scope"] = " ".join(scopes)
        payload.update(extra)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, _secret_bytes(self._settings), algorithm=ALGORITHM)


__all__ = ["ALGORITHM", "MIN_SECRET_BYTES", "Claims", "JwtVerifier"]
