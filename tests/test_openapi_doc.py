"""The OpenAPI document says what the server does (issue 10, item 8), checked rule by rule with
hostile values; tests/test_openapi_fuzz.py checks the same with generated requests."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from agent_sdk.config import Settings, load_settings
from agent_sdk.core.api_keys import MAX_GRACE_SECONDS
from agent_sdk.core.orgs import ORG_ID
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}


# One server and one document for the whole module: building the app and its document took
# 2-7 s a test on a busy machine, and these tests only read, or write what no other test here
# looks at (a key, a run, an org that exists already).
@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("openapi-doc") / "home"
    home.mkdir()
    env = {"HOME": str(home), "NO_COLOR": "1"}
    return load_settings(env=env, cwd=home)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def auth(settings: Settings, client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token_path.read_text().strip()}"}


@pytest.fixture(scope="module")
def doc(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    # With the docs off (the default) the document is served to credentials only.
    resp = client.get("/openapi.json", headers=auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def param(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in doc["paths"][path][method]["parameters"] if p["name"] == name
    )
    return found


def matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None  # JSON Schema patterns are unanchored


ORG_HEADERS = ["default", "nope", "a" * 64, "a" * 65, "", "../default", "de fault", "dé", "x\t"]


@pytest.mark.parametrize("value", ORG_HEADERS)
def test_x_org_id_pattern_is_the_rule_the_server_applies(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str], value: str
) -> None:
    header = param(doc, "/v1/runs", "get", "X-Org-Id")
    pattern = header["schema"]["pattern"]
    # The same rule as the core's, not a copy that could drift.
    assert matches(pattern, value) == bool(ORG_ID.fullmatch(value))
    raw = value.encode("latin-1")  # as a client sends it on the wire
    resp = client.get("/v1/runs", headers={**auth, "X-Org-Id": raw})
    if matches(pattern, value):
        assert resp.status_code in (200, 404), resp.text  # 404: no such org
    else:
        assert resp.status_code == 400, resp.text
    # An anonymous caller is refused first, whatever the header: it learns nothing.
    assert client.get("/v1/runs", headers={"X-Org-Id": raw}).status_code == 401


def _methods(path_item: dict[str, Any]) -> set[str]:
    return {m.upper() for m in path_item if m in {"get", "post", "put", "patch", "delete"}}


def test_allow_names_exactly_the_documented_methods_of_every_path(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> None:
    for path, item in doc["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x1", path)
        resp = client.options(url, headers=auth)
        assert resp.status_code == 405, (path, resp.text)
        assert set(resp.headers["allow"].split(", ")) == _methods(item), path
    # The bulk retry is not shadowed by /v1/runs/{run_id}: GET there is not a run look-up.
    resp = client.get("/v1/runs/retry", headers=auth)
    assert resp.status_code == 405 and resp.headers["allow"] == "POST", resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    # A run id that merely starts with "retry" is still a run id.
    assert client.get("/v1/runs/retry-1", headers=auth).status_code == 404


def test_every_operation_documents_the_problems_it_can_answer(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str], settings: Settings
) -> None:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            expected = {"400", "413", "422"}  # 422: text no store can hold, on any route
            if op.get("security"):
                expected |= {"401", "403", "404", "409", "429", "503"}
            assert expected <= set(op["responses"]), (method, path)
            for status, answer in op["responses"].items():
                if status[0] in "45":
                    content = answer["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
                    assert content["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }
    # And they are what the server answers: a body over the limit on any route, an unknown org.
    big = b"x" * (settings.server.max_body_bytes + 1)
    for method, path in (("post", "/v1/admin/orgs"), ("get", "/v1/status"), ("get", "/health")):
        resp = client.request(method, path, content=big, headers=auth)
        assert resp.status_code == 413, (path, resp.text)
    assert client.get("/v1/status", headers={**auth, "X-Org-Id": "nope"}).status_code == 404
    assert client.post("/v1/admin/orgs", json={"id": "default"}, headers=auth).status_code == 409


def test_the_sse_routes_declare_one_event_of_the_stream(doc: dict[str, Any]) -> None:
    for path in ("/v1/runs/{run_id}/events", "/v1/runs/{run_id}/events/replay"):
        stream = doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]
        schema = stream["schema"]
        assert schema["type"] == "object" and set(schema["required"]) == {"id", "event", "data"}
        data = schema["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        assert data["contentSchema"] == {"$ref": "#/components/schemas/EventModel"}


@pytest.mark.parametrize(
    "value",
    ["queued", "queued,running", "dead", "bogus", "queued,", ",queued", "queued;drop", "", "%00"],
)
def test_status_filter_pattern_agrees_with_the_server(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str], value: str
) -> None:
    schema = param(doc, "/v1/runs", "get", "status")["schema"]
    pattern = schema["anyOf"][0]["items"]["pattern"]
    resp = client.get("/v1/runs", params={"status": value}, headers=auth)
    if matches(pattern, value):
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 422, resp.text


def test_bulk_retry_statuses_are_an_enum(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> None:
    schema = doc["components"]["schemas"]["RetryRuns"]["properties"]["status"]
    assert schema["items"]["enum"] == ["failed", "dead", "cancelled"]
    for status in schema["items"]["enum"]:
        resp = client.post("/v1/runs/retry", json={"status": [status]}, headers=auth)
        assert resp.status_code == 202, resp.text
    for status in ("queued", "succeeded", "bogus", ""):
        resp = client.post("/v1/runs/retry", json={"status": [status]}, headers=auth)
        assert resp.status_code == 422, resp.text


def test_grace_seconds_bounds_are_the_core_bounds(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> None:
    schema = doc["components"]["schemas"]["RotateKey"]["properties"]["grace_seconds"]
    assert (schema["minimum"], schema["maximum"]) == (0, MAX_GRACE_SECONDS)
    key = client.post("/v1/admin/api-keys", json={"name": "k"}, headers=auth).json()["key"]
    url = f"/v1/admin/api-keys/{key['id']}/rotate"
    for grace in (0, 1.5, MAX_GRACE_SECONDS):
        assert client.post(url, json={"grace_seconds": grace}, headers=auth).status_code == 200
    for grace in (-1, MAX_GRACE_SECONDS + 1, 1e308, "soon"):
        assert client.post(url, json={"grace_seconds": grace}, headers=auth).status_code == 422


@pytest.mark.parametrize(
    ("agent", "ok"),
    [
        ({}, False),
        ({"model": "scripted"}, False),
        ({"name": "n", "bogus": 1}, False),
        ({"name": "n", "tools": "fs"}, False),
        ("", False),
        (NOOP, True),
        ({"name": "n"}, True),
    ],
)
def test_the_inline_agent_schema_agrees_with_the_server(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str], agent: Any, ok: bool
) -> None:
    import jsonschema_rs

    field = doc["components"]["schemas"]["CreateRun"]["properties"]["agent"]
    assert jsonschema_rs.validator_for(field).is_valid(agent) == ok
    resp = client.post("/v1/runs", json={"agent": agent, "input": "hi"}, headers=auth)
    assert resp.status_code == (201 if ok else 422), resp.text


def test_a_cursor_has_the_documented_shape(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> None:
    schema = param(doc, "/v1/runs", "get", "cursor")["schema"]["anyOf"][0]
    for _ in range(3):
        client.post("/v1/runs", json={"agent": NOOP, "input": "hi"}, headers=auth)
    cursor = client.get("/v1/runs?limit=1", headers=auth).json()["next_cursor"]
    assert matches(schema["pattern"], cursor) and len(cursor) <= schema["maxLength"]
    assert client.get(f"/v1/runs?limit=1&cursor={cursor}", headers=auth).status_code == 200
    for bad in ("", "!!", "a" * 1025, "eyJ2Ijo", "a b"):
        resp = client.get("/v1/runs", params={"cursor": bad}, headers=auth)
        assert resp.status_code == 422, (bad, resp.text)
        assert not matches(schema["pattern"], bad) or len(bad) > 1024 or bad == "eyJ2Ijo"


def test_redaction_pattern_rules_are_in_the_schema(
    doc: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> None:
    body = doc["components"]["schemas"]["PatternBody"]["properties"]
    regex, placeholder = body["regex"], body["placeholder"]["anyOf"][0]
    assert regex["maxLength"] == 512
    for value, allowed in (("EMP-\\d{6}", True), ("a+", False), ("a*", False), ("a{2,}", False)):
        assert matches(regex["pattern"], value) == allowed, value
        resp = client.put("/v1/admin/redaction/patterns/emp", json={"regex": value}, headers=auth)
        assert resp.status_code == (200 if allowed else 422), resp.text
    for value, allowed in (("[EMP]", True), ("[emp]", False), ("EMP", False)):
        assert matches(placeholder["pattern"], value) == allowed
        resp = client.put(
            "/v1/admin/redaction/patterns/emp",
            json={"regex": "EMP-\\d{6}", "placeholder": value},
            headers=auth,
        )
        assert resp.status_code == (200 if allowed else 422), resp.text
