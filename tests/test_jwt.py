"""JWT bearer tokens: every refusal is crafted here, token by token."""

from __future__ import annotations

import base64
import json
import time
import traceback
from typing import Any

import jwt as pyjwt
import pytest

from agent_sdk.config import Settings
from agent_sdk.errors import AuthenticationError, ConfigError
from agent_sdk.security.jwt import Claims, JwtVerifier

# 64 bytes, so PyJWT also signs HS512 test tokens with it without a key-length warning.
SECRET = "s3cr3t-" + "k" * 57
OTHER_SECRET = "other-" + "o" * 58


@pytest.fixture
def jwt_settings(settings: Settings) -> Settings:
    return settings.replace(jwt_enabled=True, jwt_secret=SECRET, jwt_leeway=30.0)


@pytest.fixture
def verifier(jwt_settings: Settings) -> JwtVerifier:
    return JwtVerifier(jwt_settings)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "agent-sdk",
        "aud": "agent-sdk",
        "sub": "user-1",
        "org_id": "org_a",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token)
    exc = info.value
    shown = "".join(traceback.format_exception(exc)) + repr(exc.to_dict())
    assert SECRET not in shown
    assert len(token) < 8 or token not in shown
    return exc.message


# -- accepted tokens -----------------------------------------------------------------------


def test_a_valid_token_gives_its_claims(verifier: JwtVerifier) -> None:
    token = verifier.issue("user-1", "org_a", scopes=["runs:read", "runs:write"], ttl=600)
    claims = verifier.verify(token)
    assert claims == Claims(
        sub="user-1", org_id="org_a", scopes=("runs:read", "runs:write"), exp=claims.exp
    )
    assert abs(claims.exp - (time.time() + 600)) < 5


def test_scopes_as_a_list_or_both_forms(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(scopes=["runs:read"]), SECRET, algorithm="HS256")
    assert verifier.verify(token).scopes == ("runs:read",)
    token = pyjwt.encode(
        _claims(scope="runs:read admin:keys", scopes=["runs:read", "runs:write"]),
        SECRET,
        algorithm="HS256",
    )
    assert verifier.verify(token).scopes == ("runs:read", "admin:keys", "runs:write")
    assert verifier.verify(pyjwt.encode(_claims(), SECRET, algorithm="HS256")).scopes == ()


def test_an_audience_list_containing_ours_is_accepted(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(aud=["other", "agent-sdk"]), SECRET, algorithm="HS256")
    assert verifier.verify(token).sub == "user-1"


def test_clock_skew_within_the_leeway_is_accepted(verifier: JwtVerifier) -> None:
    now = int(time.time())
    expired_just = _claims(iat=now - 100, exp=now - 10)
    assert verifier.verify(pyjwt.encode(expired_just, SECRET, algorithm="HS256"))
    early = _claims(nbf=now + 10, iat=now + 10)
    assert verifier.verify(pyjwt.encode(early, SECRET, algorithm="HS256"))


# -- refused tokens ------------------------------------------------------------------------


def test_alg_none_is_refused(verifier: JwtVerifier) -> None:
    token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + "."
    assert "algorithm" in _refused(verifier, token)
    token = _b64({"alg": "None", "typ": "JWT"}) + "." + _b64(_claims()) + "."
    assert "algorithm" in _refused(verifier, token)


def test_hs512_with_the_right_secret_is_refused(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(), SECRET, algorithm="HS512")
    assert "algorithm" in _refused(verifier, token)


def test_rs256_is_refused(verifier: JwtVerifier) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = pyjwt.encode(_claims(), key, algorithm="RS256")
    assert "algorithm" in _refused(verifier, token)


def test_another_secret_is_refused(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "invalid token"


def test_a_tampered_payload_is_refused(verifier: JwtVerifier) -> None:
    header, _, signature = verifier.issue("user-1", "org_a").split(".")
    forged = header + "." + _b64(_claims(org_id="org_b")) + "." + signature
    assert _refused(verifier, forged) == "invalid token"


def test_an_expired_token_is_refused(verifier: JwtVerifier) -> None:
    now = int(time.time())
    token = pyjwt.encode(_claims(iat=now - 600, exp=now - 60), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token expired"


def test_a_token_not_yet_valid_is_refused(verifier: JwtVerifier) -> None:
    now = int(time.time())
    token = pyjwt.encode(_claims(nbf=now + 120), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token not yet valid"
    token = pyjwt.encode(_claims(iat=now + 120), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token not yet valid"


def test_the_wrong_audience_is_refused(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(aud="someone-else"), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token audience is not accepted"
    token = pyjwt.encode(_claims(aud=None), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token has no aud claim"


def test_the_wrong_issuer_is_refused(verifier: JwtVerifier) -> None:
    token = pyjwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token issuer is not accepted"
    token = pyjwt.encode(_claims(iss=None), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == "token has no iss claim"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "org_id"])
def test_a_missing_required_claim_is_refused(verifier: JwtVerifier, claim: str) -> None:
    token = pyjwt.encode(_claims(**{claim: None}), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == f"token has no {claim} claim"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": ""}, "token has no sub claim"),
        ({"sub": 42}, "invalid token"),
        ({"org_id": ""}, "token has no org_id claim"),
        ({"org_id": 7}, "token org_id claim is not a string"),
        ({"scope": ["runs:read"]}, "token scope claim is not a string"),
        ({"scopes": "runs:read"}, "token scopes claim is not a list of strings"),
        ({"scopes": ["runs:read", 1]}, "token scopes claim is not a list of strings"),
        ({"exp": "tomorrow"}, "invalid token"),
        ({"iat": "now"}, "invalid token"),
    ],
)
def test_malformed_claims_are_refused(
    verifier: JwtVerifier, changes: dict[str, Any], reason: str
) -> None:
    token = pyjwt.encode(_claims(**changes), SECRET, algorithm="HS256")
    assert _refused(verifier, token) == reason


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "x" * 10_000])
def test_garbage_is_refused(verifier: JwtVerifier, token: str) -> None:
    assert _refused(verifier, token) == "invalid token"


def test_issue_can_leave_out_or_override_claims(verifier: JwtVerifier) -> None:
    assert _refused(verifier, verifier.issue("u", "org_a", exp=None)) == "token has no exp claim"
    assert _refused(verifier, verifier.issue("u", "org_a", ttl=-120)) == "token expired"
    assert _refused(verifier, verifier.issue("u", "org_a", aud="x")).startswith("token audience")


# -- construction --------------------------------------------------------------------------


def test_a_missing_secret_is_refused_at_start_up(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="AGENT_SDK_JWT_SECRET"):
        JwtVerifier(settings.replace(jwt_enabled=True, jwt_secret=None))


def test_a_short_secret_is_refused_at_start_up(settings: Settings) -> None:
    short = "x" * 31
    with pytest.raises(ConfigError, match="AGENT_SDK_JWT_SECRET") as info:
        JwtVerifier(settings.replace(jwt_enabled=True, jwt_secret=short))
    assert short not in str(info.value.to_dict())
    JwtVerifier(settings.replace(jwt_enabled=True, jwt_secret="x" * 32))
    # The length is counted in bytes: 16 two-byte characters are enough.
    JwtVerifier(settings.replace(jwt_enabled=True, jwt_secret="é" * 16))


def test_settings_from_the_environment(isolated_env: dict[str, str]) -> None:
    from agent_sdk.config import load_settings

    env = dict(isolated_env, AGENT_SDK_JWT_ENABLED="true", AGENT_SDK_JWT_SECRET=SECRET,
               AGENT_SDK_JWT_ISSUER="https://idp.example.com", AGENT_SDK_JWT_AUDIENCE="api",
               AGENT_SDK_JWT_LEEWAY="0")  # fmt: skip
    v = JwtVerifier(load_settings(env=env))
    token = pyjwt.encode(
        _claims(iss="https://idp.example.com", aud="api"), SECRET, algorithm="HS256"
    )
    assert v.verify(token).org_id == "org_a"
    now = int(time.time())
    late = pyjwt.encode(
        _claims(iss="https://idp.example.com", aud="api", iat=now - 60, exp=now - 1),
        SECRET,
        algorithm="HS256",
    )
    assert _refused(v, late) == "token expired"


def test_when_disabled_every_token_is_refused(settings: Settings, verifier: JwtVerifier) -> None:
    disabled = JwtVerifier(settings.replace(jwt_secret=None))
    assert not disabled.enabled
    token = verifier.issue("user-1", "org_a")
    with pytest.raises(AuthenticationError, match="not enabled"):
        disabled.verify(token)
