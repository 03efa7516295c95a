"""Remembered API keys are never trusted past a change: the server keeps the keys it verified
(``KeyService.authenticate``), and a key revoked, rotated, narrowed or deleted by any process, or
by hand in SQL, is refused by the very next request; an expired one at the instant it expires;
and nothing forged or foreign gets in through that memory. Through HTTP, on SQLite and Postgres.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from raw_sql import raw_sql
from server_process import agent_sdk
from starlette.testclient import TestClient

from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.security import api_key_secrets as keys

NewKey = Callable[..., dict[str, Any]]


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def new_key(edge_client: TestClient, edge_auth: dict[str, str]) -> NewKey:
    def make(**body: Any) -> dict[str, Any]:
        body.setdefault("name", "ci")
        body.setdefault("role", "viewer")
        headers = {**edge_auth, **body.pop("headers", {})}
        resp = edge_client.post("/v1/admin/api-keys", json=body, headers=headers)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created

    return make


@pytest.fixture
def reads(edge_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key ids the server reads from the store to verify a token (not from its memory)."""
    calls: list[str] = []
    real = edge_runtime.store.find_api_key_for_auth

    def spy(key_id: str) -> Any:
        calls.append(key_id)
        return real(key_id)

    monkeypatch.setattr(edge_runtime.store, "find_api_key_for_auth", spy)
    return calls


def warm(client: TestClient, token: str, reads: list[str]) -> None:
    """Two requests: the first verifies the key, the second is answered from memory."""
    assert client.get("/v1/runs", headers=bearer(token)).status_code == 200
    before = len(reads)
    assert client.get("/v1/runs", headers=bearer(token)).status_code == 200
    assert len(reads) == before, "the second request read the key again: nothing is remembered"


def status(client: TestClient, token: str, **headers: str) -> int:
    return client.get("/v1/runs", headers=bearer(token, **headers)).status_code


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(
    edge_client: TestClient, new_key: NewKey, reads: list[str]
) -> None:
    created = new_key()
    warm(edge_client, created["token"], reads)
    # A real second process: the CLI, acting on the same database as the server.
    out = subprocess.run(
        [*agent_sdk(), "keys", "revoke", created["key"]["id"], "--yes", "-o", "json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["revoked_at"]
    assert status(edge_client, created["token"]) == 401


def test_a_key_revoked_in_this_process_is_refused_at_once(
    edge_client: TestClient, edge_auth: dict[str, str], new_key: NewKey, reads: list[str]
) -> None:
    created = new_key()
    warm(edge_client, created["token"], reads)
    resp = edge_client.post(f"/v1/admin/api-keys/{created['key']['id']}/revoke", headers=edge_auth)
    assert resp.status_code == 200
    assert status(edge_client, created["token"]) == 401
    assert status(edge_client, created["token"]) == 401  # and stays refused


def test_rotation_elsewhere_ends_the_old_secret_at_once_or_at_the_end_of_its_grace(
    edge_settings: Settings,
    edge_runtime: Runtime,
    edge_client: TestClient,
    new_key: NewKey,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = new_key(), new_key()
    for created in (first, second):
        warm(edge_client, created["token"], reads)
    other = Runtime(edge_settings)  # a second runtime: its own connections to the same store
    try:
        _, new_first = other.keys.rotate("default", first["key"]["id"])
        _, new_second = other.keys.rotate("default", second["key"]["id"], grace_seconds=3600)
    finally:
        other.close()
    assert status(edge_client, first["token"]) == 401
    assert status(edge_client, new_first) == 200
    # With a grace period the old secret works until it ends, to the microsecond, even once
    # it is remembered again.
    warm(edge_client, second["token"], reads)
    assert status(edge_client, new_second) == 200
    found = edge_runtime.store.find_api_key_for_auth(second["key"]["id"])
    assert found is not None and found[3] is not None
    grace_end = datetime.fromisoformat(found[3])
    now = [grace_end - timedelta(microseconds=1)]
    monkeypatch.setattr(edge_runtime.keys, "_clock", lambda: now[0])
    assert status(edge_client, second["token"]) == 200
    now[0] = grace_end
    assert status(edge_client, second["token"]) == 401
    assert status(edge_client, new_second) == 200


def test_changes_made_by_hand_in_sql_are_seen_on_the_next_request(
    edge_settings: Settings, edge_client: TestClient, new_key: NewKey, reads: list[str]
) -> None:
    narrowed, deleted, revoked = new_key(), new_key(), new_key()
    for created in (narrowed, deleted, revoked):
        warm(edge_client, created["token"], reads)
    raw_sql(
        edge_settings,
        "UPDATE api_keys SET scopes = ? WHERE id = ?",
        ('["sessions:read"]', narrowed["key"]["id"]),
    )
    assert status(edge_client, narrowed["token"]) == 403  # runs:read is gone
    assert edge_client.get("/v1/sessions", headers=bearer(narrowed["token"])).status_code == 200
    raw_sql(edge_settings, "DELETE FROM api_keys WHERE id = ?", (deleted["key"]["id"],))
    assert status(edge_client, deleted["token"]) == 401
    raw_sql(
        edge_settings,
        "UPDATE api_keys SET revoked_at = ? WHERE id = ?",
        ("2030-01-01T00:00:00.000000Z", revoked["key"]["id"]),
    )
    assert status(edge_client, revoked["token"]) == 401


def test_a_remembered_key_expires_at_its_instant(
    edge_runtime: Runtime,
    edge_client: TestClient,
    new_key: NewKey,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    created = new_key(expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    warm(edge_client, created["token"], reads)
    now = [expires - timedelta(microseconds=1)]
    monkeypatch.setattr(edge_runtime.keys, "_clock", lambda: now[0])
    before = len(reads)
    assert status(edge_client, created["token"]) == 200
    now[0] = expires  # nothing in the store changed: the clock alone refuses it
    assert status(edge_client, created["token"]) == 401
    now[0] = expires + timedelta(days=1)
    assert status(edge_client, created["token"]) == 401
    assert len(reads) == before


def test_forged_and_foreign_tokens_get_nothing_from_the_memory(
    edge_runtime: Runtime,
    edge_client: TestClient,
    edge_auth: dict[str, str],
    new_key: NewKey,
    reads: list[str],
) -> None:
    created = new_key()
    token, key_id = created["token"], created["key"]["id"]
    warm(edge_client, token, reads)
    # The same key id with another secret and a valid checksum; the real token with one
    # character changed; the real token cut short or padded.
    _, forged = keys.generate(key_id)
    for bad in (forged, token[:-1] + ("A" if token[-1] != "A" else "B"), token[:-1], token + "x"):
        assert status(edge_client, bad) == 401, bad
    assert status(edge_client, token) == 200
    # A remembered key of another org acts only in its own org.
    made = edge_client.post("/v1/admin/orgs", json={"id": "acme"}, headers=edge_auth)
    assert made.status_code == 201
    acme = new_key(headers={"X-Org-Id": "acme"})
    warm(edge_client, acme["token"], reads)
    assert status(edge_client, acme["token"], **{"X-Org-Id": "default"}) == 403
    assert status(edge_client, acme["token"], **{"X-Org-Id": "acme"}) == 200
    # The memory holds digests, never a token.
    entries = edge_runtime.keys._verified._entries
    assert entries and all(len(fp) == 32 for fp in entries)
    assert token not in repr(entries) and acme["token"] not in repr(entries)


def test_the_memory_is_bounded_and_forgets_a_key_whole() -> None:
    from agent_sdk.records import Principal
    from agent_sdk.security.verified_keys import Verified, VerifiedKeys, fingerprint

    now = datetime.now(UTC)

    def entry(key_id: str) -> Verified:
        p = Principal(f"api_key:{key_id}", "default", frozenset(), "api_key", key_id=key_id)
        return Verified(p, 0, None, now)

    memory = VerifiedKeys(max_entries=3)
    for token in ("t1", "t2", "t3"):
        memory.put(fingerprint(token), entry("k1" if token != "t3" else "k2"))
    memory.forget("k1")  # both secrets of a rotated key
    assert len(memory) == 1 and memory.get(fingerprint("t3")) is not None
    for i in range(10):
        memory.put(fingerprint(f"x{i}"), entry(f"k{i}"))
        assert len(memory) <= 3


def test_a_remembered_key_is_not_admitted_when_the_store_cannot_be_read(
    edge_runtime: Runtime,
    edge_client: TestClient,
    new_key: NewKey,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_sdk.errors import BackendUnavailable

    created = new_key()
    warm(edge_client, created["token"], reads)

    def down() -> int:
        raise BackendUnavailable("the database is down")

    monkeypatch.setattr(edge_runtime.store, "api_key_generation", down)
    assert status(edge_client, created["token"]) == 503  # fails closed, never from memory
    monkeypatch.undo()
    assert status(edge_client, created["token"]) == 200
