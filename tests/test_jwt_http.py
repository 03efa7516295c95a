"""JWT time claims and lifetime through the HTTP API, on SQLite and Postgres: tokens signed with
the right secret (a misbehaving or compromised issuer) whose ``exp``, ``iat`` or ``nbf`` is a
string, a boolean, a non-finite or absurd number, or whose lifetime is longer than
``AGENT_SDK_JWT_MAX_LIFETIME``, are refused with 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.errors import ConfigError
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

SECRET = "k" * 48
DAY = 86_400


@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of one test, on the store of `engine` (also for the CLI)."""
    monkeypatch.setenv("AGENT_SDK_JWT_ENABLED", "true")
    monkeypatch.setenv("AGENT_SDK_JWT_SECRET", SECRET)
    return dict(os.environ)


def settings_of(env: dict[str, str], **extra: str) -> Settings:
    return load_settings(env={**env, **extra}, cwd=Path.cwd())


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_of(env))) as c:
        yield c


def signed(payload_json: str, secret: str = SECRET) -> str:
    """An HS256 token over exactly this JSON text (so it may hold what json.dumps would not
    write, such as Infinity, or a number past what a float holds)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(payload_json.encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def token(**changes: Any) -> str:
    """A token that is valid but for ``changes`` (a claim set to None is left out)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "agent-sdk", "aud": "agent-sdk", "sub": "mallory",
                              "org_id": "default", "scope": "runs:read admin:keys",
                              "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return signed(json.dumps({k: v for k, v in claims.items() if v is not None}))


def raw_token(exp: str, iat: str | None = None, nbf: str | None = None) -> str:
    now = int(time.time())
    parts = [f'"exp":{exp}', f'"iat":{iat if iat is not None else now}']
    if nbf is not None:
        parts.append(f'"nbf":{nbf}')
    return signed('{"iss":"agent-sdk","aud":"agent-sdk","sub":"mallory","org_id":"default",'
                  '"scope":"runs:read",' + ",".join(parts) + "}")  # fmt: skip


def refused(client: TestClient, tok: str) -> str:
    resp = client.get("/v1/runs", headers={"Authorization": f"Bearer {tok}"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["content-type"] == "application/problem+json"
    detail: str = resp.json()["detail"]
    assert SECRET not in resp.text and tok not in resp.text
    return detail


def accepted(client: TestClient, tok: str) -> None:
    resp = client.get("/v1/runs", headers={"Authorization": f"Bearer {tok}"})
    assert resp.status_code == 200, resp.text


def test_time_claims_must_be_numbers(client: TestClient) -> None:
    now = int(time.time())
    accepted(client, token())
    accepted(client, token(exp=now + 600.5, iat=now - 0.25))  # NumericDate may have fractions
    not_a_number = [
        token(exp=str(now + 600)),  # the reported hole: a string exp in the future
        token(exp=f" {now + 600}"),
        token(iat=str(now)),
        token(nbf=str(now - 10)),
        token(nbf=False),
        token(nbf=True),
        token(iat=True),
    ]
    for tok in not_a_number:
        assert refused(client, tok).endswith("claim is not a number"), tok
    odd = [
        token(exp=True),  # PyJWT reads it as 1: long expired
        token(exp=False),
        token(exp=[now + 600]),
        token(exp={"$date": now + 600}),
        token(exp="tomorrow"),
        token(exp=f"{now + 600}.0"),
        token(iat="now"),
        token(nbf="soon"),
        token(exp=None),  # no expiry is never "valid forever"
        token(iat=None),
        raw_token("Infinity"),
        raw_token("1e400"),
        raw_token(str(now + 600), iat="NaN"),
        raw_token(str(now + 600), iat="-Infinity"),
        raw_token(str(now + 600), nbf="NaN"),
        raw_token("null"),
    ]
    for tok in odd:
        refused(client, tok)


def test_a_token_lives_at_most_the_maximum_lifetime(client: TestClient) -> None:
    now = int(time.time())
    accepted(client, token(iat=now, exp=now + DAY))  # exactly the default maximum
    too_long = [
        token(iat=now, exp=now + DAY + 1),
        token(iat=now, exp=now + 365 * DAY),
        token(iat=now - 2 * DAY, exp=now + 60),  # an old token that is still "valid"
        raw_token("1" + "0" * 30),  # an integer far past any clock
        raw_token(str(now + 60), iat="-1" + "0" * 20),
    ]
    for tok in too_long:
        assert "exceeds the maximum of 86400 seconds" in refused(client, tok)
    # iat cannot be moved forward to make the span look short: a future iat is refused.
    assert refused(client, token(iat=now + 3600, exp=now + 3700)) == "token not yet valid"


def test_the_maximum_lifetime_is_a_setting(env: dict[str, str]) -> None:
    now = int(time.time())
    short = settings_of(env, AGENT_SDK_JWT_MAX_LIFETIME="600")
    assert short.jwt.max_lifetime == 600
    with TestClient(create_app(short)) as client:
        accepted(client, token(iat=now, exp=now + 600))
        assert "maximum of 600 seconds" in refused(client, token(iat=now, exp=now + 3600))
    for bad in ("0", "-5", "abc", "", "1h"):
        with pytest.raises(ConfigError, match="AGENT_SDK_JWT_MAX_LIFETIME"):
            settings_of(env, AGENT_SDK_JWT_MAX_LIFETIME=bad)
