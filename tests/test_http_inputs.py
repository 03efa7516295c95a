"""Hostile numbers and texts at the HTTP edge, on SQLite and on PostgreSQL: every integer
parameter is bounded in the schema, so a number past what a store holds is a 422 from validation;
and no answer ever names a database driver or repeats its text (issue 10, item 7): a driver
error is answered in words of ours, an unexpected one generically, with the driver's text in the
log only."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import fresh_postgres_schema

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
MAX_INT64 = 2**63 - 1
# Integers no store can hold, integers below every bound, and what is not an integer at all.
HOSTILE_INTS = [
    "9" * 40, str(2**63), str(2**64), "-" + "9" * 40, "-1", "1.5", "1e3", "abc", "", "0x10",
    "NaN", "inf", "１",
]  # fmt: skip
# Words of drivers and of Python internals that no answer may carry.
LEAKS = ("sqlite", "psycopg", "overflow", "python int", "codec", "traceback", "syntax")


# One server per store for the whole module: building and migrating one costs seconds a test on
# a busy machine, and these tests only read, or write what no other test here looks at (a key of
# their own, an input that is refused). A test that breaks the store does so with monkeypatch,
# which puts it back when that test ends.
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def settings_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("http-inputs") / "home"
    home.mkdir()
    env = {"HOME": str(home), "NO_COLOR": "1"}
    if request.param == "sqlite":
        yield load_settings(env=env, cwd=home)
        return
    with fresh_postgres_schema() as url:
        env["AGENT_SDK_STORAGE_BACKEND"] = "postgres"
        env["AGENT_SDK_DATABASE_URL"] = url
        yield load_settings(env=env, cwd=home)


@pytest.fixture(scope="module")
def runtime(settings_env: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings_env)
    try:
        yield rt
    finally:
        rt.close(wait=True, timeout=10)


@pytest.fixture(scope="module")
def client(settings_env: Settings, runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(settings_env, runtime=runtime)) as c:
        yield c


@pytest.fixture(scope="module")
def auth(settings_env: Settings, client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings_env.admin_token_path.read_text().strip()}"}


@pytest.fixture(scope="module")
def run_id(client: TestClient, auth: dict[str, str]) -> str:
    resp = client.post("/v1/runs", json={"agent": NOOP, "input": "hi"}, headers=auth)
    assert resp.status_code == 201, resp.text
    rid: str = resp.json()["id"]
    for _ in range(2000):  # a finished run: its SSE streams end
        if client.get(f"/v1/runs/{rid}", headers=auth).json()["status"] == "succeeded":
            return rid
    raise AssertionError("the run did not finish")


def assert_clean_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    low = resp.text.lower()
    for word in LEAKS:
        assert word not in low, (word, resp.text)
    body: dict[str, Any] = resp.json()
    return body


QUERY_INTS = [
    ("/v1/runs/{run}/events", "after"),
    ("/v1/runs/{run}/events", "limit"),
    ("/v1/runs/{run}/events?stream=true&", "after"),
    ("/v1/runs/{run}/events/replay", "after"),
    ("/v1/runs", "limit"),
    ("/v1/sessions", "limit"),
    ("/v1/admin/orgs", "limit"),
    ("/v1/admin/api-keys", "limit"),
    ("/v1/admin/audit-logs", "after"),
    ("/v1/admin/audit-logs", "limit"),
]


@pytest.mark.parametrize(("path", "param"), QUERY_INTS)
def test_an_integer_query_parameter_out_of_bounds_is_a_clean_422(
    client: TestClient, auth: dict[str, str], run_id: str, path: str, param: str
) -> None:
    base = path.format(run=run_id)
    sep = "" if base.endswith("&") else "?"
    for value in HOSTILE_INTS:
        resp = client.get(f"{base}{sep}{param}={value}", headers=auth)
        body = assert_clean_problem(resp, 422)
        assert body["code"] == "invalid_input"
        assert [e["loc"] for e in body["errors"]] == [["query", param]], (value, body)


def test_the_largest_seq_a_store_holds_is_accepted(
    client: TestClient, auth: dict[str, str], run_id: str
) -> None:
    resp = client.get(f"/v1/runs/{run_id}/events?after={MAX_INT64}", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"data": [], "next_after": None}
    resp = client.get(f"/v1/admin/audit-logs?after={MAX_INT64}", headers=auth)
    assert resp.status_code == 200 and resp.json()["data"] == [], resp.text
    # The bound is documented where the validation is.
    doc = client.get("/openapi.json", headers=auth).json()
    params = doc["paths"]["/v1/runs/{run_id}/events"]["get"]["parameters"]
    after = next(p for p in params if p["name"] == "after")["schema"]
    assert (after["minimum"], after["maximum"]) == (0, MAX_INT64)


@pytest.mark.parametrize("value", ["9" * 40, str(2**63), "-1", "1.5", "abc"])
def test_a_hostile_last_event_id_is_a_clean_422(
    client: TestClient, auth: dict[str, str], run_id: str, value: str
) -> None:
    headers = {**auth, "Accept": "text/event-stream", "Last-Event-ID": value}
    for path in (f"/v1/runs/{run_id}/events", f"/v1/runs/{run_id}/events/replay"):
        assert_clean_problem(client.get(path, headers=headers), 422)


BODY_INTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("post", "/v1/admin/api-keys", {"name": "k"}, "burst"),
    ("post", "/v1/admin/api-keys", {"name": "k"}, "rate_per_second"),
    ("post", "/v1/admin/api-keys/{key}/rotate", {}, "grace_seconds"),
    ("post", "/v1/runs/retry", {"status": ["failed"]}, "limit"),
    ("post", "/v1/admin/encryption-keys/rewrap", {}, "limit"),
    ("put", "/v1/admin/retention", {}, "runs_days"),
]
# JSON numbers (and what Python's json reads beyond them) out of every bound, and non-numbers.
HOSTILE_JSON: list[Any] = [10**40, -(10**40), 2**63, -1, 1e308, "abc", None, [1], {"a": 1}]
OPTIONAL = {"burst", "rate_per_second", "runs_days"}  # null there means "no limit"


@pytest.mark.parametrize(("method", "path", "body", "field"), BODY_INTS)
def test_an_integer_body_field_out_of_bounds_is_a_clean_422(
    client: TestClient,
    auth: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    key = client.post("/v1/admin/api-keys", json={"name": "victim"}, headers=auth).json()
    url = path.format(key=key["key"]["id"])
    for value in HOSTILE_JSON:
        if value is None and field in OPTIONAL:
            continue
        resp = client.request(method, url, json={**body, field: value}, headers=auth)
        problem = assert_clean_problem(resp, 422)
        assert problem["code"] == "invalid_input", (field, value, problem)
    # Infinity and NaN are not JSON, but Python's parser reads them: refused all the same.
    for raw in ("Infinity", "-Infinity", "NaN"):
        text = json.dumps({**body, field: "__VALUE__"}).replace('"__VALUE__"', raw)
        resp = client.request(
            method, url, content=text, headers={**auth, "Content-Type": "application/json"}
        )
        assert_clean_problem(resp, 422)


def test_a_text_no_store_can_hold_is_refused_in_words_of_ours(
    client: TestClient, auth: dict[str, str]
) -> None:
    # A lone surrogate is valid JSON ("\ud800") but no UTF-8 store can hold it.
    body = '{"agent": {"name": "noop", "model": "scripted"}, "input": "x\\ud800y"}'
    resp = client.post(
        "/v1/runs", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    problem = assert_clean_problem(resp, 422)
    assert "cannot be stored" in problem["detail"], problem


def test_an_unexpected_driver_error_is_answered_generically_and_logged(
    client: TestClient,
    auth: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store: Any = runtime.store

    def broken(org_id: str, run_id: str, **_: Any) -> Any:
        # A statement the database refuses: a bug in a query, as the driver reports it.
        return store._query("SELEC id FROM runs WHERE id = 'x'")

    monkeypatch.setattr(store, "get_run", broken)
    with caplog.at_level(logging.ERROR, logger="agent_sdk.store"):
        resp = client.get("/v1/runs/run_anything", headers=auth)
    problem = assert_clean_problem(resp, 500)
    assert problem["detail"] == "the server failed to handle this request; the error was logged"
    assert problem["request_id"] in problem["hint"]
    assert "SELEC" not in resp.text and "runs" not in problem["detail"]
    # The detail went to the log, for the operator.
    assert any("SELEC" in r.getMessage() for r in caplog.records), caplog.text
