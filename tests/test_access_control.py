"""Access control through the HTTP API: who may do what, in which org, from where, how often,
and the audit record of it. Every refusal the access-control issue names has a test here."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import PermissionDenied
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
JWT_SECRET = "s" * 48


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def root(settings: Settings, client: TestClient) -> dict[str, str]:
    """The bootstrap key: admin of `default`, with admin:platform."""
    return bearer(settings.admin_token_path.read_text().strip())


MakeKey = Callable[..., str]


@pytest.fixture
def make_key(client: TestClient, root: dict[str, str]) -> MakeKey:
    def make(org: str = "default", **body: Any) -> str:
        body.setdefault("name", "test")
        resp = client.post("/v1/admin/api-keys", json=body, headers={**root, "X-Org-Id": org})
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token

    return make


@pytest.fixture
def org_b(client: TestClient, root: dict[str, str]) -> str:
    assert client.post("/v1/admin/orgs", json={"id": "org-b"}, headers=root).status_code == 201
    return "org-b"


def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    return body


def wait_done(client: TestClient, run_id: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60  # generous: a loaded machine is slow, not wrong
    while client.get(f"/v1/runs/{run_id}", headers=headers).json()["status"] == "running":
        assert time.monotonic() < deadline, f"run {run_id} still running after 60 s"
        time.sleep(0.01)


# -- tenancy -------------------------------------------------------------------------------------
def test_every_route_with_an_id_is_404_for_another_orgs_key(
    client: TestClient, root: dict[str, str], make_key: MakeKey, org_b: str
) -> None:
    run = client.post("/v1/runs", json={"agent": NOOP, "input": "x", "session_id": "s1"},
                      headers=root).json()  # fmt: skip
    wait_done(client, run["id"], root)
    key_a = client.post("/v1/admin/api-keys", json={"name": "a"}, headers=root).json()["key"]
    b = bearer(make_key(org_b, role="admin"))
    routes = [
        ("get", f"/v1/runs/{run['id']}"),
        ("post", f"/v1/runs/{run['id']}/cancel"),
        ("get", f"/v1/runs/{run['id']}/events"),
        ("get", f"/v1/runs/{run['id']}/events/replay"),
        ("get", f"/run/{run['id']}/events/replay"),
        ("get", "/v1/sessions/s1"),
        ("get", f"/v1/admin/api-keys/{key_a['id']}"),
        ("post", f"/v1/admin/api-keys/{key_a['id']}/rotate"),
        ("post", f"/v1/admin/api-keys/{key_a['id']}/revoke"),
        ("delete", f"/v1/admin/api-keys/{key_a['id']}"),
    ]
    for method, path in routes:
        body = problem(client.request(method, path, headers=b), 404)
        assert run["id"] not in body["detail"] or "not found" in body["detail"], path
    # Listings in org B show nothing of org A.
    assert client.get("/v1/runs", headers=b).json()["data"] == []
    assert client.get("/v1/sessions", headers=b).json()["data"] == []
    keys_b = client.get("/v1/admin/api-keys", headers=b).json()["data"]
    assert key_a["id"] not in {k["id"] for k in keys_b}
    # And the key of A still works: nothing was rotated or revoked by B.
    assert (
        client.get(f"/v1/admin/api-keys/{key_a['id']}", headers=root).json()["revoked_at"] is None
    )


def test_naming_another_org_is_403_unless_platform(
    client: TestClient, root: dict[str, str], make_key: MakeKey, org_b: str
) -> None:
    a_admin = bearer(make_key(role="admin"))
    routes = [("get", "/v1/runs"), ("post", "/v1/runs"), ("get", "/v1/sessions"),
              ("get", "/v1/admin/api-keys"), ("get", "/v1/admin/audit-logs")]  # fmt: skip
    for method, path in routes:
        body = {"agent": "demo", "input": "x"} if method == "post" else None
        resp = client.request(method, path, headers={**a_admin, "X-Org-Id": org_b}, json=body)
        assert "may not act in org 'org-b'" in problem(resp, 403)["detail"]
    assert problem(client.get(f"/v1/admin/orgs/{org_b}", headers=a_admin), 403)
    # The platform key may.
    assert client.get("/v1/runs", headers={**root, "X-Org-Id": org_b}).status_code == 200
    assert problem(client.get("/v1/runs", headers={**root, "X-Org-Id": "nope"}), 404)
    # Creating an org needs admin:platform.
    assert problem(client.post("/v1/admin/orgs", json={"id": "c"}, headers=a_admin), 403)


# -- roles and scopes ----------------------------------------------------------------------------
def test_scopes_of_each_role(client: TestClient, make_key: MakeKey) -> None:
    viewer, operator = bearer(make_key(role="viewer")), bearer(make_key(role="operator"))
    body = {"agent": NOOP, "input": "x"}
    assert problem(client.post("/v1/runs", json=body, headers=viewer), 403)["code"] == (
        "permission_denied"
    )
    assert (
        "runs:write" in problem(client.post("/v1/runs", json=body, headers=viewer), 403)["detail"]
    )
    assert client.get("/v1/runs", headers=viewer).status_code == 200
    assert client.post("/v1/runs", json=body, headers=operator).status_code == 201
    for h in (viewer, operator):
        assert problem(client.get("/v1/admin/api-keys", headers=h), 403)
        assert problem(client.post("/v1/admin/api-keys", json={"name": "x"}, headers=h), 403)
        assert problem(client.get("/v1/admin/audit-logs", headers=h), 403)
    custom = bearer(make_key(scopes=["runs:read"]))
    assert problem(client.get("/v1/sessions", headers=custom), 403)
    who = client.get("/v1/auth/whoami", headers=custom).json()
    assert who["scopes"] == ["runs:read"] and who["org_id"] == "default"


def test_bad_key_requests_are_invalid_input(client: TestClient, root: dict[str, str]) -> None:
    for body in ({"name": "x", "role": "god"}, {"name": "x", "scopes": ["runs:everything"]},
                 {"name": "x", "ip_allowlist": ["10.0.0.300/8"]},
                 {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, {"name": ""},
                 {"name": "x", "rate_per_second": -1}):  # fmt: skip
        assert problem(client.post("/v1/admin/api-keys", json=body, headers=root), 422)


# -- key lifecycle -------------------------------------------------------------------------------
def test_key_lifecycle_rotation_grace_and_revocation(
    app: FastAPI, client: TestClient, root: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [datetime.now(UTC)]  # stepped by hand: a real half-second grace raced a busy machine
    monkeypatch.setattr(app.state.runtime.keys, "_clock", lambda: now[0])
    made = client.post("/v1/admin/api-keys", json={"name": "ci", "role": "viewer"}, headers=root)
    key, token = made.json()["key"], made.json()["token"]
    assert token.startswith("asdk_") and token.endswith(key["last4"])
    listed = client.get("/v1/admin/api-keys", headers=root)
    assert token not in listed.text and key["id"] in listed.text
    assert client.get("/v1/runs", headers=bearer(token)).status_code == 200

    rotated = client.post(f"/v1/admin/api-keys/{key['id']}/rotate", json={"grace_seconds": 0.5},
                          headers=root).json()  # fmt: skip
    new = rotated["token"]
    assert rotated["key"]["id"] == key["id"] and new != token
    assert client.get("/v1/runs", headers=bearer(token)).status_code == 200  # within grace
    assert client.get("/v1/runs", headers=bearer(new)).status_code == 200
    now[0] += timedelta(seconds=0.5)
    assert problem(client.get("/v1/runs", headers=bearer(token)), 401)  # grace over
    client.post(f"/v1/admin/api-keys/{key['id']}/rotate", headers=root)  # no grace: at once
    assert problem(client.get("/v1/runs", headers=bearer(new)), 401)

    other = client.post("/v1/admin/api-keys", json={"name": "x"}, headers=root).json()
    assert client.get("/v1/runs", headers=bearer(other["token"])).status_code == 200
    revoked = client.post(f"/v1/admin/api-keys/{other['key']['id']}/revoke", headers=root).json()
    assert revoked["revoked_at"]
    resp = client.get("/v1/runs", headers=bearer(other["token"]))
    assert problem(resp, 401) and resp.headers["www-authenticate"].startswith("Bearer")
    assert problem(client.post(f"/v1/admin/api-keys/{other['key']['id']}/rotate", headers=root),
                   409)  # fmt: skip


def test_a_bad_checksum_is_refused_without_a_database_read(
    app: FastAPI, client: TestClient, make_key: MakeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_key()
    rt: Runtime = app.state.runtime
    calls: list[str] = []
    real = rt.store.find_api_key_for_auth
    monkeypatch.setattr(rt.store, "find_api_key_for_auth", lambda k: calls.append(k) or real(k))
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert problem(client.get("/v1/runs", headers=bearer(forged)), 401)
    assert calls == []
    client.get("/v1/runs", headers=bearer(token))
    assert len(calls) == 1


def test_expired_keys_are_refused(
    app: FastAPI,
    client: TestClient,
    root: dict[str, str],
    make_key: MakeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The key service's clock is stepped by hand: a wall-clock expiry a second away failed on a
    # loaded machine whenever the create request itself took longer than that.
    now = [datetime.now(UTC)]
    monkeypatch.setattr(app.state.runtime.keys, "_clock", lambda: now[0])
    expires = now[0] + timedelta(hours=1)
    token = make_key(expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    expires = expires.replace(microsecond=0)  # the whole second the request named
    h = bearer(token)
    now[0] = expires - timedelta(microseconds=1)
    assert client.get("/v1/runs", headers=h).status_code == 200
    now[0] = expires  # the instant it names is already past
    assert problem(client.get("/v1/runs", headers=h), 401)
    now[0] = expires + timedelta(days=3650)
    assert problem(client.get("/v1/runs", headers=h), 401)
    # Hostile: an expiry already past by the service's clock, or not a time, is refused.
    for bad in [(now[0] - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "tomorrow", ""]:
        resp = client.post("/v1/admin/api-keys", json={"name": "x", "expires_at": bad},
                           headers=root)  # fmt: skip
        assert problem(resp, 422)


# -- rate limits and networks --------------------------------------------------------------------
def test_rate_limit_answers_429_with_headers(client: TestClient, make_key: MakeKey) -> None:
    h = bearer(make_key(rate_per_second=0.5, burst=3))
    answers = [client.get("/v1/runs", headers=h) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"default";q=3;w=6'
    assert answers[2].headers["ratelimit"].startswith('"default";r=0;')
    refused = answers[3]
    problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "ratelimit" in refused.headers


def test_rate_limits_survive_rotation(
    client: TestClient, root: dict[str, str], make_key: MakeKey
) -> None:
    made = client.post("/v1/admin/api-keys", json={"name": "r", "rate_per_second": 0.1,
                       "burst": 2}, headers=root).json()  # fmt: skip
    h = bearer(made["token"])
    assert [client.get("/v1/runs", headers=h).status_code for _ in range(2)] == [200, 200]
    new = client.post(f"/v1/admin/api-keys/{made['key']['id']}/rotate", headers=root).json()
    assert problem(client.get("/v1/runs", headers=bearer(new["token"])), 429)


@pytest.mark.services
def test_a_redis_limit_is_shared_by_two_servers(settings: Settings, redis_url: str) -> None:
    shared = settings.replace(redis_url=redis_url)
    with TestClient(create_app(shared)) as one, TestClient(create_app(shared)) as two:
        root = bearer(settings.admin_token_path.read_text().strip())
        token = one.post("/v1/admin/api-keys", json={"name": "r", "rate_per_second": 0.01,
                         "burst": 4}, headers=root).json()["token"]  # fmt: skip
        codes = [c.get("/v1/runs", headers=bearer(token)).status_code
                 for c in (one, two, one, two, one, two)]  # fmt: skip
        assert codes == [200, 200, 200, 200, 429, 429]


def test_ip_allowlist_and_trusted_proxies(settings: Settings, root: dict[str, str]) -> None:
    # TestClient's peer is "testclient", not an address: only a trusted proxy's
    # X-Forwarded-For can place the caller, so trust every address for this test.
    app = create_app(settings.replace(trusted_proxies=("0.0.0.0/0", "::/0")))
    with TestClient(app, client=("10.1.2.3", 5000)) as client:
        made = client.post("/v1/admin/api-keys", json={"name": "ip", "ip_allowlist":
                           ["192.0.2.0/24", "2001:db8::/32"]}, headers=root).json()  # fmt: skip
        h = bearer(made["token"])
        ok = client.get("/v1/runs", headers={**h, "X-Forwarded-For": "192.0.2.7"})
        assert ok.status_code == 200
        assert (
            client.get("/v1/runs", headers={**h, "X-Forwarded-For": "2001:db8::1"}).status_code
            == 200
        )
        denied = client.get("/v1/runs", headers={**h, "X-Forwarded-For": "198.51.100.1"})
        assert "198.51.100.1" in problem(denied, 403)["detail"]
    # Without trusted proxies the header is ignored: the peer address decides.
    with TestClient(create_app(settings), client=("192.0.2.9", 5000)) as client:
        assert client.get("/v1/runs", headers=h).status_code == 200
        spoof = {**h, "X-Forwarded-For": "192.0.2.7"}
    with TestClient(create_app(settings), client=("198.51.100.1", 5000)) as client:
        assert problem(client.get("/v1/runs", headers=spoof), 403)


# -- JWT -----------------------------------------------------------------------------------------
def test_jwt_bearer_tokens(settings: Settings) -> None:
    from agent_sdk.security.jwt import JwtVerifier

    jwt_settings = settings.replace(jwt_enabled=True, jwt_secret=JWT_SECRET)
    issuer = JwtVerifier(jwt_settings)
    with TestClient(create_app(jwt_settings)) as client:
        good = issuer.issue("alice", "default", scopes=("runs:read",))
        assert client.get("/v1/runs", headers=bearer(good)).status_code == 200
        assert problem(client.post("/v1/runs", json={"agent": "demo", "input": "x"},
                                   headers=bearer(good)), 403)  # fmt: skip
        assert client.get("/v1/auth/whoami", headers=bearer(good)).json()["subject"] == "jwt:alice"
        bad = [
            issuer.issue("alice", "default", ttl=-120),  # expired beyond the leeway
            issuer.issue("alice", "default", aud="someone-else"),
            issuer.issue("alice", "default", iss="someone-else"),
            issuer.issue("alice", "default", nbf=int(time.time()) + 3600),
            JwtVerifier(jwt_settings.replace(jwt_secret="t" * 48)).issue("alice", "default"),
            _alg_none_token(),
        ]
        for token in bad:
            resp = client.get("/v1/runs", headers=bearer(token))
            problem(resp, 401)
            assert resp.headers["www-authenticate"].startswith("Bearer")


def _alg_none_token() -> str:
    import base64

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "mallory", "org_id": "default", "scope": "admin:platform runs:write",
              "iat": now, "exp": now + 600, "iss": "agent-sdk", "aud": "agent-sdk"}  # fmt: skip
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_a_short_jwt_secret_stops_the_server_at_start(settings: Settings) -> None:
    from agent_sdk.errors import ConfigError

    app = create_app(settings.replace(jwt_enabled=True, jwt_secret="short"))
    with pytest.raises(ConfigError, match="AGENT_SDK_JWT_SECRET"), TestClient(app):
        pass


# -- audit ---------------------------------------------------------------------------------------
def test_state_changes_and_refusals_are_audited_without_secrets(
    client: TestClient, root: dict[str, str], make_key: MakeKey
) -> None:
    viewer = make_key(role="viewer")
    run = client.post("/v1/runs", json={"agent": NOOP, "input": "x"},
                      headers={**root, "X-Request-Id": "req-123"}).json()  # fmt: skip
    client.post("/v1/runs", json={"agent": NOOP, "input": "x"}, headers=bearer(viewer))
    made = client.post("/v1/admin/api-keys", json={"name": "k"}, headers=root).json()
    client.post(f"/v1/admin/api-keys/{made['key']['id']}/rotate", headers=root)
    client.post(f"/v1/admin/api-keys/{made['key']['id']}/revoke", headers=root)
    export = client.get("/v1/admin/audit-logs/export?format=jsonl", headers=root)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in export.text.splitlines()]
    actions = [(r["action"], r["outcome"]) for r in records]
    assert ("runs.create", "success") in actions
    assert ("POST /v1/runs", "denied") in actions
    assert [a for a, _ in actions if a.startswith("keys.")][-3:] == [
        "keys.create",
        "keys.rotate",
        "keys.revoke",
    ]
    create = next(r for r in records if r["action"] == "runs.create")
    assert create["target"] == run["id"] and create["request_id"] == "req-123"
    assert create["actor"].startswith("api_key:") and create["source_ip"]
    for token in (viewer, made["token"], root["Authorization"][7:]):
        assert token not in export.text
    csv_export = client.get("/v1/admin/audit-logs/export?format=csv", headers=root)
    assert csv_export.text.splitlines()[0].startswith("org_id,seq")
    tail = client.get("/v1/admin/audit-logs?limit=2", headers=root).json()["data"]
    assert [r["seq"] for r in tail] == [records[-2]["seq"], records[-1]["seq"]]


def test_a_failed_audit_write_fails_the_action(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)):
        pass  # a first start makes the bootstrap key (itself an audited action)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log's directory should be")
    app = create_app(settings.replace(audit_log_path=str(blocked / "audit.jsonl")))
    with TestClient(app) as client:
        root = bearer(settings.admin_token_path.read_text().strip())
        resp = client.post("/v1/runs", json={"agent": NOOP, "input": "x"}, headers=root)
        assert "audit" in problem(resp, 503)["detail"]
        assert client.get("/v1/runs", headers=root).json()["data"] == []


def test_the_audit_chain_verifies_and_catches_an_edit(settings: Settings) -> None:
    chained = settings.replace(audit_hash_chain=True, audit_checkpoint_every=2)
    with TestClient(create_app(chained)) as client:
        root = bearer(settings.admin_token_path.read_text().strip())
        for _ in range(5):
            client.post("/v1/runs", json={"agent": NOOP, "input": "x"}, headers=root)
        report = client.get("/v1/admin/audit-logs/verify", headers=root).json()
        assert report["ok"] and report["count"] >= 5 and report["checkpoints"] >= 2
        import sqlite3

        db = sqlite3.connect(settings.store.sqlite_path)
        db.execute('UPDATE audit_log SET details = \'{"agent":"evil"}\' WHERE seq = 3')
        db.commit()
        db.close()
        report = client.get("/v1/admin/audit-logs/verify", headers=root).json()
        assert not report["ok"] and report["first_bad_seq"] == 3


def test_without_an_org_the_cli_acts_in_the_keys_own_org(
    settings: Settings, client: TestClient, make_key: MakeKey, org_b: str
) -> None:
    from agent_sdk.backend.http import HttpBackend

    token = make_key(org_b, role="operator")
    backend = HttpBackend(settings.replace(org_id=None), api_key=token, client=client)
    run = backend.create_run(NOOP, "x")
    assert run.org_id == org_b and backend.whoami().org_id == org_b
    named = HttpBackend(settings.replace(org_id="default"), api_key=token, client=client)
    with pytest.raises(PermissionDenied):
        named.list_runs()


def test_an_admitted_change_that_fails_is_audited_as_failed(
    client: TestClient, root: dict[str, str]
) -> None:
    problem(client.post("/v1/runs/run_nope/cancel", headers=root), 404)
    problem(client.post("/v1/runs", json={"agent": "dmeo", "input": "x"}, headers=root), 422)
    records = client.get("/v1/admin/audit-logs?limit=5", headers=root).json()["data"]
    failed = [(r["action"], r["details"]["error"]) for r in records if r["outcome"] == "failed"]
    assert failed == [("POST /v1/runs/run_nope/cancel", "not_found"),
                      ("POST /v1/runs", "invalid_input")]  # fmt: skip


def test_the_spec_s_unversioned_admin_paths_answer_deprecated(
    client: TestClient, root: dict[str, str]
) -> None:
    made = client.post("/v1/admin/api-keys", json={"name": "old"}, headers=root).json()
    resp = client.post(f"/admin/api-keys/{made['key']['id']}/rotate", headers=root)
    assert resp.status_code == 200 and resp.headers["x-api-deprecated"] == "true"
    export = client.get("/admin/audit-logs/export?format=csv", headers=root)
    assert export.status_code == 200 and export.headers["x-api-deprecated"] == "true"
