"""Who the client is, as the real server sees it: uvicorn's own proxy handling is off, so only
``AGENT_SDK_TRUSTED_PROXIES`` makes ``X-Forwarded-For`` count, for IP allowlists and for the
``source_ip`` of audit records (issue 10, item 2). Through ``agent-sdk serve`` processes, on SQLite
and on PostgreSQL, because the hole was in how the process configured uvicorn, which an in-process
test client never runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServeProcess, child_env, migrate

from agent_sdk.config import load_settings
from agent_sdk.server.listener import server_config

ALLOWED_NET = "203.0.113.0/24"
SPOOFED = "203.0.113.9"
NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}

# Every way a client on loopback might claim to be 203.0.113.9 without a trusted proxy.
SPOOFS: list[list[tuple[str, str]]] = [
    [("X-Forwarded-For", SPOOFED)],
    [("X-Forwarded-For", f"{SPOOFED}, 127.0.0.1")],
    [("X-Forwarded-For", f"127.0.0.1, {SPOOFED}")],
    [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", SPOOFED)],  # two header lines
    [("X-Forwarded-For", f"[{SPOOFED}]:443")],
    [("X-Forwarded-For", f"::ffff:{SPOOFED}")],
    [("Forwarded", f"for={SPOOFED}")],
    [("X-Real-IP", SPOOFED)],
    [("X-Forwarded-For", SPOOFED), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "x")],
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def env(request: pytest.FixtureRequest, isolated_env: dict[str, str]) -> dict[str, str]:
    extra: dict[str, str] = {}
    if request.param == "postgres":
        extra = {"storage_backend": "postgres",
                 "database_url": request.getfixturevalue("postgres_url")}  # fmt: skip
    # Were uvicorn's proxy handling on, this would make it believe every peer.
    return {**child_env(**extra), "FORWARDED_ALLOW_IPS": "*"}


def post_run(srv: ServeProcess, token: str, headers: list[tuple[str, str]]) -> httpx.Response:
    return httpx.post(
        srv.url + "/v1/runs",
        json={"agent": NOOP, "input": "x"},
        headers=[("Authorization", f"Bearer {token}"), *headers],
        timeout=10,
    )


def audit(srv: ServeProcess) -> list[dict[str, Any]]:
    answer = httpx.get(
        srv.url + "/v1/admin/audit-logs",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {srv.token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


@pytest.mark.slow
def test_x_forwarded_for_counts_only_from_trusted_proxies(
    env: dict[str, str], tmp_path: Path
) -> None:
    migrate(env)
    trusting = {**env, "AGENT_SDK_TRUSTED_PROXIES": "127.0.0.1/32"}
    with (
        ServeProcess(env, tmp_path / "plain.log") as plain,
        ServeProcess(trusting, tmp_path / "trusting.log") as behind_proxy,
    ):
        made = httpx.post(
            plain.url + "/v1/admin/api-keys",
            json={"name": "office", "role": "operator", "ip_allowlist": [ALLOWED_NET]},
            headers={"Authorization": f"Bearer {plain.token}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        office = made.json()["token"]

        # No trusted proxy: the peer (127.0.0.1) is the client, whatever the headers claim.
        for spoof in SPOOFS:
            answer = post_run(plain, office, spoof)
            assert answer.status_code == 403, (spoof, answer.text)
            detail = answer.json()["detail"]
            assert detail == "requests from 127.0.0.1 are not allowed for this key", spoof
        refused = [e for e in audit(plain) if e["outcome"] == "denied"]
        assert len(refused) == len(SPOOFS)
        assert {e["source_ip"] for e in refused} == {"127.0.0.1"}

        # 127.0.0.1 trusted as a proxy: the address it forwards is the client's.
        assert post_run(behind_proxy, office, [("X-Forwarded-For", SPOOFED)]).status_code == 201
        # ... but only the hop next to the proxy counts: a forged address left of an untrusted
        # one, and no header at all, leave the client outside the allowlist.
        forged = [("X-Forwarded-For", f"{SPOOFED}, 198.51.100.7")]
        assert post_run(behind_proxy, office, forged).status_code == 403
        assert post_run(behind_proxy, office, []).status_code == 403
        assert post_run(behind_proxy, office, [("Forwarded", f"for={SPOOFED}")]).status_code == 403
        records = audit(behind_proxy)
        created = [e for e in records if e["action"] == "runs.create"]
        assert [e["source_ip"] for e in created] == [SPOOFED]
        late = [e for e in records if e["outcome"] == "denied"][len(SPOOFS) :]
        assert [e["source_ip"] for e in late] == ["198.51.100.7", "127.0.0.1", "127.0.0.1"]
    assert "Traceback" not in plain.output + behind_proxy.output


def test_the_server_config_leaves_client_addresses_to_the_app(
    isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    settings = load_settings(env=dict(os.environ), cwd=Path.cwd())
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("client"))

    config = server_config(app, settings, host="127.0.0.1", port=0)
    config.load()
    assert config.proxy_headers is False
    assert config.forwarded_allow_ips == []
    # Nothing between uvicorn and the app rewrites the client (no ProxyHeadersMiddleware).
    scope = {"type": "http", "client": ("127.0.0.1", 5000), "scheme": "http",
             "headers": [(b"x-forwarded-for", SPOOFED.encode())]}  # fmt: skip
    asyncio.run(config.loaded_app(scope, None, None))
    assert seen == [("127.0.0.1", 5000)]
    # The choices of the one configuration cannot be undone by a caller.
    for option in ("proxy_headers", "forwarded_allow_ips", "http"):
        with pytest.raises(ValueError, match=option):
            server_config(app, settings, **{option: True})
