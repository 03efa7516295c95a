"""Delegation through the HTTP API and the CLI, on SQLite and Postgres: nobody hands out a right
it does not hold. A tenant admin key, a key holding only ``admin:keys`` and a JWT with
``runs:read admin:keys`` each try to mint ``admin:platform``, a wider scope and a wider role, to
take the token of a wider key by rotating it, to revoke it, and to reach past their own org or IP
allowlist; every refusal is a 403 naming the missing scope, leaves nothing behind, and is in the
audit log. The legitimate grants still work."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent_sdk.backend import http
from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings, load_settings
from agent_sdk.security.jwt import JwtVerifier
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

JWT_SECRET = "j" * 48
KEYS = "/v1/admin/api-keys"
ADMIN = ["runs:read", "runs:write", "sessions:read", "admin:keys", "admin:orgs", "admin:audit"]


@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of one test, on the SQLite or the Postgres store (also for the CLI)."""
    monkeypatch.setenv("AGENT_SDK_JWT_ENABLED", "true")
    monkeypatch.setenv("AGENT_SDK_JWT_SECRET", JWT_SECRET)
    return dict(os.environ)


@pytest.fixture
def conf(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    client: TestClient
    settings: Settings
    root: dict[str, str]  # the bootstrap key: admin of `default`, with admin:platform

    def make(self, org: str = "default", **body: Any) -> tuple[dict[str, Any], dict[str, str]]:
        body.setdefault("name", "made")
        resp = self.client.post(KEYS, json=body, headers={**self.root, "X-Org-Id": org})
        assert resp.status_code == 201, resp.text
        made: dict[str, Any] = resp.json()
        return made["key"], bearer(made["token"])

    def jwt(self, sub: str, scopes: str, org: str = "default") -> dict[str, str]:
        return bearer(JwtVerifier(self.settings).issue(sub, org, scopes=tuple(scopes.split())))

    def key_ids(self, org: str = "default") -> set[str]:
        resp = self.client.get(KEYS, headers={**self.root, "X-Org-Id": org}, params={"limit": 1000})
        return {k["id"] for k in resp.json()["data"]}

    def audit(self, org: str = "default") -> list[dict[str, Any]]:
        resp = self.client.get(
            "/v1/admin/audit-logs/export", headers={**self.root, "X-Org-Id": org}
        )
        return [json.loads(line) for line in resp.text.splitlines()]

    def whoami(self, headers: dict[str, str]) -> dict[str, Any]:
        resp = self.client.get("/v1/auth/whoami", headers=headers)
        assert resp.status_code == 200, resp.text
        found: dict[str, Any] = resp.json()
        return found


@pytest.fixture
def world(conf: Settings) -> Iterator[World]:
    # A peer address (not TestClient's "testclient"), so IP allowlists can admit it.
    with TestClient(create_app(conf), client=("127.0.0.1", 5000)) as client:
        root = bearer(conf.admin_token_path.read_text().strip())
        assert client.post("/v1/admin/orgs", json={"id": "org-b"}, headers=root).status_code == 201
        yield World(client, conf, root)


def denied(resp: Any, *missing: str) -> str:
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    detail: str = resp.json()["detail"]
    for scope in missing:
        assert repr(scope) in detail, detail
    return detail


# -- minting ------------------------------------------------------------------------------------
def test_no_giver_mints_a_scope_or_role_it_lacks(world: World) -> None:
    _, tenant_admin = world.make(role="admin")
    _, keys_only = world.make(scopes=["admin:keys"])
    jwt = world.jwt("mallory", "runs:read admin:keys")
    _, b_admin = world.make("org-b", role="admin")
    before = world.key_ids(), world.key_ids("org-b")
    # (giver, body, the scopes the refusal must name)
    attempts: list[tuple[dict[str, str], dict[str, Any], tuple[str, ...]]] = []
    for giver in (tenant_admin, keys_only, jwt, b_admin):
        attempts += [
            (giver, {"scopes": ["admin:platform"]}, ("admin:platform",)),
            (giver, {"role": "admin", "scopes": [*ADMIN, "admin:platform"]}, ("admin:platform",)),
            # Hostile spellings of the same request.
            (giver, {"scopes": [" admin:platform ", "admin:keys"]}, ("admin:platform",)),
            (
                giver,
                {"scopes": ["admin:keys", "admin:platform", "admin:platform"]},
                ("admin:platform",),
            ),
            (
                giver,
                {"role": "viewer", "scopes": ["admin:platform"], "expires_at": "2099-01-01"},
                ("admin:platform",),
            ),
        ]
    for giver in (keys_only, jwt):
        attempts += [
            (giver, {"scopes": ["runs:write"]}, ("runs:write",)),  # a wider scope
            (giver, {"scopes": ["admin:keys", "admin:audit"]}, ("admin:audit",)),
            (giver, {"role": "admin"}, ("runs:write", "admin:orgs", "admin:audit")),  # wider role
            (giver, {"role": "operator", "scopes": []}, ("runs:write",)),  # [] means the role's
            (giver, {"role": "operator", "scopes": None}, ("runs:write",)),
        ]
    attempts.append((keys_only, {"role": "viewer"}, ("runs:read", "sessions:read")))
    attempts.append((jwt, {"role": "viewer"}, ("sessions:read",)))  # holds runs:read only
    for giver, body, missing in attempts:
        resp = world.client.post(KEYS, json={"name": "escalate", **body}, headers=giver)
        detail = denied(resp, *missing)
        assert "may not grant" in detail
        assert "token" not in resp.json()
    # Malformed requests are refused before any grant is looked at.
    for body in ({"scopes": "admin:platform"}, {"scopes": ["ADMIN:PLATFORM"]},
                 {"scopes": ["admin:*"]}, {"role": "root"}, {"role": "Admin"},
                 {"scopes": ["admin:platform"], "org_id": "org-b"},
                 {"scopes": [["admin:platform"]]}):  # fmt: skip
        resp = world.client.post(KEYS, json={"name": "x", **body}, headers=keys_only)
        assert resp.status_code in (400, 422), (body, resp.text)
    # Nothing was created in either org.
    assert (world.key_ids(), world.key_ids("org-b")) == before
    # And the givers themselves still hold what they held.
    assert world.whoami(keys_only)["scopes"] == ["admin:keys"]
    assert sorted(world.whoami(jwt)["scopes"]) == ["admin:keys", "runs:read"]


def test_a_giver_may_grant_what_it_holds(world: World) -> None:
    _, tenant_admin = world.make(role="admin")
    _, keys_only = world.make(scopes=["admin:keys"])
    jwt = world.jwt("alice", "runs:read admin:keys")
    grants: list[tuple[dict[str, str], dict[str, Any], list[str]]] = [
        (tenant_admin, {"role": "admin"}, ADMIN),
        (tenant_admin, {"role": "operator"}, ["runs:read", "runs:write", "sessions:read"]),
        (tenant_admin, {"scopes": ["runs:read"]}, ["runs:read"]),
        (keys_only, {"scopes": ["admin:keys"]}, ["admin:keys"]),
        (jwt, {"scopes": ["runs:read"]}, ["runs:read"]),
        (jwt, {"scopes": ["runs:read", "admin:keys"]}, ["runs:read", "admin:keys"]),
    ]
    for giver, body, scopes in grants:
        resp = world.client.post(KEYS, json={"name": "fine", **body}, headers=giver)
        assert resp.status_code == 201, resp.text
        made = resp.json()
        assert made["key"]["scopes"] == scopes and made["key"]["org_id"] == "default"
        assert sorted(world.whoami(bearer(made["token"]))["scopes"]) == sorted(scopes)
    # The platform key grants anything, in any org, admin:platform included.
    made, platform_b = world.make("org-b", scopes=[*ADMIN, "admin:platform"])
    assert made["org_id"] == "org-b" and "admin:platform" in made["scopes"]
    assert world.whoami(platform_b)["org_id"] == "org-b"
    # ... and so does the key it made, which holds admin:platform itself.
    resp = world.client.post(
        KEYS, json={"name": "p2", "scopes": ["admin:platform"]}, headers=platform_b
    )
    assert resp.status_code == 201, resp.text


def test_another_org_is_out_of_reach(world: World) -> None:
    _, b_admin = world.make("org-b", role="admin")
    b_jwt = world.jwt("bob", "admin:keys runs:read", org="org-b")
    root_key_id = world.whoami(world.root)["key_id"]
    before = world.key_ids()
    for giver in (b_admin, b_jwt):
        cross = {**giver, "X-Org-Id": "default"}
        resp = world.client.post(KEYS, json={"name": "x", "scopes": ["runs:read"]}, headers=cross)
        assert "may not act in org 'default'" in denied(resp)
        for path in (f"{KEYS}/{root_key_id}/rotate", f"{KEYS}/{root_key_id}/revoke"):
            assert world.client.post(path, headers=giver).status_code == 404  # not in their org
            assert world.client.post(path, headers=cross).status_code == 403
        # Hostile org headers are refused before anything else.
        for org in ("default ", "../default", "default\x00", "*"):
            resp = world.client.post(KEYS, json={"name": "x"}, headers={**giver, "X-Org-Id": org})
            # A NUL is refused with the rest of the text no store can hold (422), first of all.
            assert resp.status_code == (422 if "\x00" in org else 400), (org, resp.text)
    assert world.key_ids() == before
    assert world.whoami(world.root)["key_id"] == root_key_id  # the root key still works


# -- rotation and revocation -------------------------------------------------------------------
def test_rotation_keeps_the_scopes_and_cannot_widen(world: World) -> None:
    key, old = world.make(
        scopes=["runs:read"],
        rate_per_second=5,
        ip_allowlist=["127.0.0.0/8"],
        expires_at="2099-01-31T00:00:00Z",
    )
    resp = world.client.post(f"{KEYS}/{key['id']}/rotate", headers=world.root)
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    kept = ("id", "org_id", "role", "scopes", "rate_per_second", "ip_allowlist", "expires_at",
            "created_at")  # fmt: skip
    assert {k: rotated["key"][k] for k in kept} == {k: key[k] for k in kept}
    assert world.whoami(bearer(rotated["token"]))["scopes"] == ["runs:read"]
    # Rotation takes no scopes, role or org: a body that tries is refused, and changes nothing.
    for body in ({"scopes": ["admin:platform"]}, {"role": "admin"}, {"org_id": "org-b"},
                 {"grace_seconds": -1}, {"grace_seconds": "forever"}):  # fmt: skip
        resp = world.client.post(f"{KEYS}/{key['id']}/rotate", json=body, headers=world.root)
        assert resp.status_code == 422, (body, resp.text)
    assert world.client.get(f"{KEYS}/{key['id']}", headers=world.root).json()["scopes"] == [
        "runs:read"
    ]
    # A key may rotate itself (it holds what it holds).
    _, keys_only = world.make(scopes=["admin:keys"])
    me = world.whoami(keys_only)["key_id"]
    resp = world.client.post(f"{KEYS}/{me}/rotate", headers=keys_only)
    assert resp.status_code == 200 and resp.json()["key"]["scopes"] == ["admin:keys"]


def test_nobody_takes_or_revokes_a_wider_key(world: World) -> None:
    root_key_id = world.whoami(world.root)["key_id"]
    _, tenant_admin = world.make(role="admin")
    _, keys_only = world.make(scopes=["admin:keys"])
    jwt = world.jwt("mallory", "runs:read admin:keys")
    operator, _ = world.make(role="operator")
    for giver in (tenant_admin, keys_only, jwt):
        # Rotating the platform key would hand its new token to the caller.
        resp = world.client.post(f"{KEYS}/{root_key_id}/rotate", headers=giver)
        assert "may not rotate a key holding" in denied(resp, "admin:platform")
        resp = world.client.post(f"{KEYS}/{root_key_id}/revoke", headers=giver)
        assert "may not revoke a key holding" in denied(resp, "admin:platform")
        denied(world.client.delete(f"{KEYS}/{root_key_id}", headers=giver), "admin:platform")
    for giver in (keys_only, jwt):
        resp = world.client.post(f"{KEYS}/{operator['id']}/rotate", headers=giver)
        denied(resp, "runs:write")
    # Nothing happened to either key: the root token still works, unrotated.
    root = world.client.get(f"{KEYS}/{root_key_id}", headers=world.root).json()
    assert root["rotated_at"] is None and root["revoked_at"] is None
    assert (
        world.client.get(f"{KEYS}/{operator['id']}", headers=world.root).json()["rotated_at"]
        is None
    )
    # An admin holds every scope of an operator key, so it may rotate and revoke it.
    resp = world.client.post(f"{KEYS}/{operator['id']}/rotate", headers=tenant_admin)
    assert resp.status_code == 200 and resp.json()["key"]["scopes"] == operator["scopes"]
    resp = world.client.post(f"{KEYS}/{operator['id']}/revoke", headers=tenant_admin)
    assert resp.status_code == 200 and resp.json()["revoked_at"]


# -- network reach ------------------------------------------------------------------------------
def test_a_key_with_an_ip_allowlist_makes_no_key_that_reaches_further(
    world: World, conf: Settings
) -> None:
    _, fenced = world.make(role="admin", ip_allowlist=["203.0.113.0/24"])
    open_key, _ = world.make(role="operator")
    with TestClient(create_app(conf), client=("203.0.113.5", 5000)) as client:
        for wider in (["0.0.0.0/0"], ["203.0.0.0/16"], ["198.51.100.7"], ["::/0"],
                      ["203.0.113.0/24", "10.0.0.0/8"]):  # fmt: skip
            resp = client.post(KEYS, json={"name": "w", "ip_allowlist": wider}, headers=fenced)
            assert "outside this credential's IP allowlist" in denied(resp), wider
        # None given: the new key inherits the fence; a narrower one is kept as asked.
        inherit = client.post(KEYS, json={"name": "i"}, headers=fenced).json()["key"]
        assert inherit["ip_allowlist"] == ["203.0.113.0/24"]
        narrow = client.post(KEYS, json={"name": "n", "ip_allowlist": ["203.0.113.8/29"]},
                             headers=fenced).json()["key"]  # fmt: skip
        assert narrow["ip_allowlist"] == ["203.0.113.8/29"]
        # Rotating an unfenced key would hand the caller an unfenced token.
        resp = client.post(f"{KEYS}/{open_key['id']}/rotate", headers=fenced)
        assert "no IP allowlist" in denied(resp)
        assert client.post(f"{KEYS}/{narrow['id']}/rotate", headers=fenced).status_code == 200


# -- the audit log ------------------------------------------------------------------------------
def test_every_refusal_is_audited(world: World) -> None:
    root_key_id = world.whoami(world.root)["key_id"]
    _, keys_only = world.make(scopes=["admin:keys"])
    keys_only_id = world.whoami(keys_only)["key_id"]
    jwt = world.jwt("mallory", "runs:read admin:keys")
    _, b_admin = world.make("org-b", role="admin")
    world.client.post(KEYS, json={"name": "x", "scopes": ["admin:platform"]}, headers=keys_only)
    world.client.post(KEYS, json={"name": "x", "role": "operator"}, headers=jwt)
    world.client.post(f"{KEYS}/{root_key_id}/rotate", headers=jwt)
    world.client.post(f"{KEYS}/{root_key_id}/revoke", headers=keys_only)
    world.client.post(KEYS, json={"name": "x", "scopes": ["admin:platform"]}, headers=b_admin)
    world.client.post("/v1/admin/orgs", json={"id": "org-c"}, headers=b_admin)
    world.client.post("/v1/admin/retention/sweep?all_orgs=true", headers=b_admin)

    refusals = [r for r in world.audit() if r["outcome"] == "denied"]
    seen = [(r["actor"], r["action"], r["target"]) for r in refusals]
    assert seen == [
        (f"api_key:{keys_only_id}", "keys.create", None),
        ("jwt:mallory", "keys.create", None),
        ("jwt:mallory", "keys.rotate", root_key_id),
        (f"api_key:{keys_only_id}", "keys.revoke", root_key_id),
    ]
    assert "'admin:platform'" in refusals[0]["details"]["reason"]
    assert refusals[0]["details"]["requested"] == ["admin:platform"]
    assert "'runs:write'" in refusals[1]["details"]["reason"]
    assert all(r["request_id"] and r["source_ip"] for r in refusals)
    in_b = [(r["action"], r["outcome"]) for r in world.audit("org-b") if r["outcome"] != "success"]
    assert in_b == [("keys.create", "denied"), ("orgs.create", "denied"),
                    ("retention.sweep", "denied")]  # fmt: skip
    assert world.client.get("/v1/admin/orgs/org-c", headers=world.root).status_code == 404


# -- the CLI ------------------------------------------------------------------------------------
runner = CliRunner()


def test_the_cli_refuses_the_same_over_http_and_acts_as_platform_admin_locally(
    conf: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = http.HttpBackend
    with TestClient(create_app(conf)) as client:
        monkeypatch.setattr(http, "HttpBackend", lambda s, **kw: real(s, client=client, **kw))
        root = conf.admin_token_path.read_text().strip()
        monkeypatch.setenv("AGENT_SDK_API_KEY", root)
        server = ["--server", "http://testserver", "-o", "json"]
        made = runner.invoke(cli_app, ["keys", "create", "--name", "k", "--scope", "admin:keys",
                                       "--scope", "runs:read", *server])  # fmt: skip
        assert made.exit_code == 0, made.stderr
        monkeypatch.setenv("AGENT_SDK_API_KEY", json.loads(made.stdout)["token"])
        for args in (["--scope", "admin:platform"], ["--role", "admin"], ["--scope", "runs:write"],
                     ["--scope", "runs:read,admin:platform"]):  # fmt: skip
            result = runner.invoke(cli_app, ["keys", "create", "--name", "x", *args, *server])
            assert result.exit_code == 4, (args, result.stdout, result.stderr)
            error = json.loads(result.stderr)["error"]
            assert error["code"] == "permission_denied" and "may not grant" in error["message"]
            assert result.stdout == ""
        root_id = client.get("/v1/auth/whoami", headers=bearer(root)).json()["key_id"]
        result = runner.invoke(cli_app, ["keys", "rotate", root_id, *server])
        assert result.exit_code == 4 and "'admin:platform'" in result.stderr
    # The local CLI is the operator of the database file: platform admin, and says so.
    monkeypatch.delenv("AGENT_SDK_API_KEY")
    who = json.loads(runner.invoke(cli_app, ["auth", "status", "-o", "json"]).stdout)
    assert who["kind"] == "local" and "admin:platform" in who["scopes"]
    result = runner.invoke(
        cli_app, ["keys", "create", "--name", "p", "--scope", "admin:platform", "-o", "json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["key"]["scopes"] == ["admin:platform"]
