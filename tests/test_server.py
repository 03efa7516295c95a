"""The HTTP edge, through Starlette's TestClient: auth, org scoping, problem answers, deprecated
paths, body limits, Server-Sent Events, probes and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import stat
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from agent_sdk import __version__
from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.records import Event
from agent_sdk.server.app import create_app
from agent_sdk.server.routes.runs import encode_sse, with_keepalive

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 but works with httpx, which is what agent-sdk depends on.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
PACED = {"name": "paced", "model": "scripted", "latency": 0.4,
         "script": [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "ok"}]}  # fmt: skip


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auth(settings: Settings, client: TestClient) -> dict[str, str]:
    return {"Authorization": "Bearer " + settings.admin_token_path.read_text().strip()}


def runtime_of(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


def assert_problem(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status
    assert body["type"] == "urn:agent-sdk:error:" + body["code"]
    assert body["request_id"] == resp.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code
    assert "Traceback" not in resp.text
    return body


def start(client: TestClient, auth: dict[str, str], agent: Any = "demo", **body: Any) -> str:
    resp = client.post("/v1/runs", json={"agent": agent, "input": "hi", **body}, headers=auth)
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    return run_id


def wait_done(client: TestClient, auth: dict[str, str], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish")


def parse_sse(text: str) -> list[dict[str, Any]]:
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            fields["data"] = json.loads(fields["data"])
            frames.append(fields)
    return frames


# -- auth -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer wrong", "Token asdk_admin_x",
     "Bearer asdk_admin_" + "A" * 43, "Bearer asdk_admin_\u00e9"],
    ids=["missing", "basic", "no-token", "empty-token", "wrong", "other-scheme", "forged",
         "non-ascii"],
)  # fmt: skip
def test_requests_without_the_token_are_refused_alike(client: TestClient, header: str) -> None:
    # Bytes, so a non-ASCII value goes out as raw UTF-8 as a careless client would send it.
    headers = {} if header is None else {"Authorization": header.encode()}
    resp = client.get("/v1/runs", headers=headers)
    body = assert_problem(resp, 401, "unauthenticated")
    assert resp.headers["www-authenticate"] == 'Bearer realm="agent-sdk"'
    assert body["detail"] == "missing or invalid credentials"


def test_every_api_route_requires_the_token(app: FastAPI, client: TestClient) -> None:
    for path in ("/v1/runs", "/v1/runs/x", "/v1/runs/x/events", "/v1/runs/x/events/replay",
                 "/v1/sessions", "/v1/sessions/x", "/runs", "/run/x/events/replay"):  # fmt: skip
        assert_problem(client.get(path), 401)
    assert_problem(client.post("/v1/runs", json={"agent": "demo", "input": "x"}), 401)
    assert_problem(client.post("/v1/runs/x/cancel"), 401)


def test_the_scheme_is_case_insensitive(client: TestClient, auth: dict[str, str]) -> None:
    lower = {"Authorization": auth["Authorization"].replace("Bearer", "bearer")}
    assert client.get("/v1/runs", headers=lower).status_code == 200


def test_probes_need_no_token_and_the_api_document_needs_one(
    client: TestClient, auth: dict[str, str]
) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "checks": {"store": "ok"}}
    assert client.get("/openapi.json").status_code == 401  # the docs are off (see test_api_docs)
    assert client.get("/openapi.json", headers=auth).status_code == 200


def test_the_admin_token_is_made_once_in_a_private_file(settings: Settings) -> None:
    with TestClient(create_app(settings)):
        token = settings.admin_token_path.read_text()
    assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600
    with TestClient(create_app(settings)) as again:
        assert settings.admin_token_path.read_text() == token
        headers = {"Authorization": "Bearer " + token.strip()}
        assert again.get("/v1/runs", headers=headers).status_code == 200


# -- orgs -----------------------------------------------------------------------------------------
def test_an_unknown_org_is_not_found(client: TestClient, auth: dict[str, str]) -> None:
    body = assert_problem(client.get("/v1/runs", headers={**auth, "X-Org-Id": "nope"}), 404)
    assert "nope" in body["detail"]


@pytest.mark.parametrize("org", ["bad org", "a" * 65, "x/y", "ü", ""])
def test_a_malformed_org_header_is_a_bad_request(
    client: TestClient, auth: dict[str, str], org: str
) -> None:
    headers: dict[str, Any] = {**auth, "X-Org-Id": org.encode()}
    assert_problem(client.get("/v1/runs", headers=headers), 400, "invalid_input")


def test_orgs_see_only_their_own_runs(
    app: FastAPI, client: TestClient, auth: dict[str, str]
) -> None:
    runtime_of(app).store.ensure_org("acme")
    other = {**auth, "X-Org-Id": "acme"}
    run_id = start(client, auth)
    assert_problem(client.get(f"/v1/runs/{run_id}", headers=other), 404)
    assert_problem(client.get(f"/v1/runs/{run_id}/events", headers=other), 404)
    assert_problem(client.post(f"/v1/runs/{run_id}/cancel", headers=other), 404)
    assert client.get("/v1/runs", headers=other).json() == {"data": [], "next_cursor": None}
    theirs = client.post("/v1/runs", json={"agent": "demo", "input": "x"}, headers=other).json()
    assert theirs["org_id"] == "acme"
    assert [r["id"] for r in client.get("/v1/runs", headers=auth).json()["data"]] == [run_id]


# -- runs -----------------------------------------------------------------------------------------
def test_create_answers_201_with_location(client: TestClient, auth: dict[str, str]) -> None:
    resp = client.post(
        "/v1/runs",
        json={"agent": "demo", "input": "hi", "session_id": "s1", "metadata": {"a": 1}},
        headers=auth,
    )
    assert resp.status_code == 201
    run = resp.json()
    assert resp.headers["location"] == f"/v1/runs/{run['id']}"
    assert (run["status"], run["session_id"], run["metadata"]) == ("queued", "s1", {"a": 1})
    assert client.get(resp.headers["location"], headers=auth).json()["id"] == run["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "x"}, "agent"),
        ({"agent": "demo"}, "input"),
        ({"agent": "demo", "input": 5}, "input"),
        ({"agent": 5, "input": "x"}, "agent"),
        ({"agent": "demo", "input": "x", "surprise": 1}, "surprise"),
        ({"agent": "demo", "input": "x", "metadata": []}, "metadata"),
    ],
)
def test_bad_bodies_list_the_field_errors(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/v1/runs", json=body, headers=auth), 422, "invalid_input")
    assert any(field in e["loc"] for e in problem["errors"]), problem
    assert all(set(e) == {"loc", "msg", "type"} for e in problem["errors"])


def test_malformed_json_is_invalid_input(client: TestClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    assert_problem(client.post("/v1/runs", content=b"{nope", headers=headers), 422)


def test_core_errors_map_to_statuses(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(client.post("/v1/runs", json={"agent": "dmeo", "input": "x"}, headers=auth),
                   422, "invalid_input")  # fmt: skip
    assert_problem(client.get("/v1/runs?status=bogus", headers=auth), 422, "invalid_input")
    assert_problem(client.get("/v1/runs?cursor=zzz", headers=auth), 422, "invalid_input")
    for limit in (0, 1001, -1):
        assert_problem(client.get(f"/v1/runs?limit={limit}", headers=auth), 422)


def test_list_filters_and_pages(client: TestClient, auth: dict[str, str]) -> None:
    ids = [start(client, auth, session_id="s") for _ in range(3)]
    for run_id in ids:
        wait_done(client, auth, run_id)
    page = client.get("/v1/runs?limit=2", headers=auth).json()
    assert [r["id"] for r in page["data"]] == ids[:0:-1]
    rest = client.get(f"/v1/runs?limit=2&cursor={page['next_cursor']}", headers=auth).json()
    assert [r["id"] for r in rest["data"]] == ids[:1] and rest["next_cursor"] is None
    assert len(client.get("/v1/runs?status=queued,running", headers=auth).json()["data"]) == 0
    both = client.get("/v1/runs?status=succeeded&status=failed", headers=auth).json()["data"]
    assert len(both) == 3
    assert client.get("/v1/sessions", headers=auth).json()["data"][0]["id"] == "s"
    assert client.get("/v1/sessions/s", headers=auth).json()["run_count"] == 3


def test_cancel_answers_202(client: TestClient, auth: dict[str, str]) -> None:
    run_id = start(client, auth, agent={**PACED, "latency": 30})
    resp = client.post(f"/v1/runs/{run_id}/cancel", headers=auth)
    assert resp.status_code == 202
    assert wait_done(client, auth, run_id)["status"] == "cancelled"


def test_event_pages(client: TestClient, auth: dict[str, str]) -> None:
    run_id = start(client, auth)
    wait_done(client, auth, run_id)
    everything = client.get(f"/v1/runs/{run_id}/events", headers=auth).json()
    n = len(everything["data"])
    assert everything["next_after"] is None and n > 4
    page = client.get(f"/v1/runs/{run_id}/events?after=1&limit=2", headers=auth).json()
    assert [e["seq"] for e in page["data"]] == [2, 3] and page["next_after"] == 3
    assert_problem(client.get(f"/v1/runs/{run_id}/events?after=-1", headers=auth), 422)
    assert_problem(client.get(f"/v1/runs/{run_id}/events?limit=0", headers=auth), 422)


# -- problems, ids, routing -----------------------------------------------------------------------
def test_unknown_route_and_method_are_problems(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/v2/runs", headers=auth), 404, "not_found")
    resp = client.delete("/v1/runs", headers=auth)
    assert_problem(resp, 405, "method_not_allowed")
    assert resp.headers["allow"]


def test_request_ids_are_echoed_when_sane(client: TestClient) -> None:
    resp = client.get("/health", headers={"X-Request-Id": "trace-42.a:b"})
    assert resp.headers["x-request-id"] == "trace-42.a:b"
    resp = client.get("/v1/runs", headers={"X-Request-Id": "x" * 500})
    assert len(resp.headers["x-request-id"]) == 32
    assert resp.json()["request_id"] == resp.headers["x-request-id"]
    assert client.get("/health").headers["x-request-id"] != resp.headers["x-request-id"]


def test_an_unexpected_error_is_a_logged_500_without_details(
    app: FastAPI, client: TestClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret internals")

    runtime_of(app).runs.get = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="agent_sdk.server"):
        resp = client.get("/v1/runs/run_x", headers=auth)
    body = assert_problem(resp, 500, "internal_error")
    assert "secret" not in resp.text
    assert body["request_id"] in body["hint"]
    assert any("secret internals" in r.exc_text for r in caplog.records if r.exc_text)


@pytest.mark.parametrize(
    "path",
    ["/v1/runs/../../etc/passwd", "/v1/runs/%2e%2e", "/v1/runs/%2e%2e%2f%2e%2e",
     "/v1/runs/..%2f..%2fetc", "/v1/runs/" + "x" * 5000, "/v1/runs/%00", "/v1/runs/%ff%fe",
     "/v1/runs/%2e%2e/events", "/v1/sessions/%2e%2e", "/v1/sessions/" + "s" * 5000,
     "/v1/runs/x%0d%0aSet-Cookie:%20a=b", "/run/%2e%2e/events/replay"],
)  # fmt: skip
def test_odd_ids_are_404_or_422_never_500(
    client: TestClient, auth: dict[str, str], path: str
) -> None:
    resp = client.get(path, headers=auth)
    assert resp.status_code in (404, 422), (path, resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    assert "set-cookie" not in resp.headers


# -- deprecated paths -----------------------------------------------------------------------------
def test_unversioned_paths_answer_with_deprecation_headers(
    client: TestClient, auth: dict[str, str]
) -> None:
    run_id = start(client, auth)
    old = client.get(f"/runs/{run_id}", headers=auth)
    assert old.status_code == 200 and old.json()["id"] == run_id
    assert old.headers["x-api-deprecated"] == "true"
    assert old.headers["deprecation"] == "true"
    assert old.headers["link"] == f'</v1/runs/{run_id}>; rel="successor-version"'
    created = client.post("/runs", json={"agent": "demo", "input": "x"}, headers=auth)
    assert created.status_code == 201 and created.headers["x-api-deprecated"] == "true"
    assert created.headers["location"].startswith("/v1/runs/")
    # Error answers on old paths say it too.
    missing = client.get("/sessions/nope", headers=auth)
    assert_problem(missing, 404)
    assert missing.headers["x-api-deprecated"] == "true"
    for current in (f"/v1/runs/{run_id}", "/health"):
        assert "x-api-deprecated" not in client.get(current, headers=auth).headers


# -- body limit -----------------------------------------------------------------------------------
@pytest.fixture
def small(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    small_settings = settings.replace(max_body_bytes=2000)
    with TestClient(create_app(small_settings)) as c:
        token = small_settings.admin_token_path.read_text().strip()
        yield c, {"Authorization": f"Bearer {token}"}


def test_a_body_over_the_limit_is_413(small: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = small
    big = json.dumps({"agent": "demo", "input": "x" * 3000}).encode()
    headers = {**auth, "Content-Type": "application/json"}
    resp = client.post("/v1/runs", content=big, headers=headers)
    assert_problem(resp, 413, "payload_too_large")
    assert "2000" in resp.json()["detail"]
    ok = json.dumps({"agent": "demo", "input": "x" * 1000}).encode()
    assert client.post("/v1/runs", content=ok, headers=headers).status_code == 201


def test_a_chunked_body_over_the_limit_is_413(small: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = small

    def chunks() -> Iterator[bytes]:
        yield b'{"agent": "demo", "input": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    headers = {**auth, "Content-Type": "application/json"}
    resp = client.post("/v1/runs", content=chunks(), headers=headers)
    assert "content-length" not in resp.request.headers
    assert_problem(resp, 413, "payload_too_large")

    def fine() -> Iterator[bytes]:
        yield b'{"agent": "demo", '
        yield b'"input": "small"}'

    assert client.post("/v1/runs", content=fine(), headers=headers).status_code == 201


def test_a_bogus_content_length_is_400(small: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = small
    headers = {**auth, "Content-Type": "application/json", "Content-Length": "abc"}
    assert_problem(client.post("/v1/runs", content=b"{}", headers=headers), 400)


# -- Server-Sent Events ---------------------------------------------------------------------------
def sse_get(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    return client.get(path, headers={**headers, "Accept": "text/event-stream"})


def test_sse_of_a_finished_run(client: TestClient, auth: dict[str, str]) -> None:
    run_id = start(client, auth)
    wait_done(client, auth, run_id)
    resp = sse_get(client, f"/v1/runs/{run_id}/events", auth)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-accel-buffering"] == "no"
    frames = parse_sse(resp.text)
    stored = client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]
    assert [f["data"] for f in frames] == stored
    assert [int(f["id"]) for f in frames] == [e["seq"] for e in stored]
    assert [f["event"] for f in frames] == [e["type"] for e in stored]


def test_sse_resumes_exactly_after_last_event_id(client: TestClient, auth: dict[str, str]) -> None:
    run_id = start(client, auth)
    wait_done(client, auth, run_id)
    n = len(client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"])
    for last in (0, 1, 3, n - 1):
        resp = sse_get(client, f"/v1/runs/{run_id}/events", {**auth, "Last-Event-ID": str(last)})
        assert [int(f["id"]) for f in parse_sse(resp.text)] == list(range(last + 1, n + 1))
    # ?stream=true&after= does the same without the headers; Last-Event-ID wins over after.
    resp = client.get(f"/v1/runs/{run_id}/events?stream=true&after=2", headers=auth)
    assert [int(f["id"]) for f in parse_sse(resp.text)] == list(range(3, n + 1))
    resp = sse_get(client, f"/v1/runs/{run_id}/events?after=1", {**auth, "Last-Event-ID": "4"})
    assert int(parse_sse(resp.text)[0]["id"]) == 5
    bad = sse_get(client, f"/v1/runs/{run_id}/events", {**auth, "Last-Event-ID": "x"})
    assert_problem(bad, 422)


def test_sse_of_an_unknown_run_is_a_404_problem(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(sse_get(client, "/v1/runs/run_nope/events", auth), 404)
    assert_problem(sse_get(client, "/v1/runs/run_nope/events/replay", auth), 404)


def test_sse_of_a_live_run_delivers_events_as_they_happen(
    client: TestClient, auth: dict[str, str]
) -> None:
    run_id = start(client, auth, agent=PACED)
    seen: list[tuple[str, str]] = []
    with client.stream(
        "GET", f"/v1/runs/{run_id}/events", headers={**auth, "Accept": "text/event-stream"}
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
                # The status when the event arrives: the run is still going for all but the last.
                status = client.get(f"/v1/runs/{run_id}", headers=auth).json()["status"]
                seen.append((kind, status))
    assert seen[0][0] == "run.created" and seen[-1][0] == "run.succeeded"
    started = [status for kind, status in seen if kind == "run.started"]
    assert started == ["running"]


def test_replay_under_both_spellings(client: TestClient, auth: dict[str, str]) -> None:
    run_id = start(client, auth)
    wait_done(client, auth, run_id)
    stored = client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]
    new = client.get(f"/v1/runs/{run_id}/events/replay", headers=auth)
    assert new.headers["content-type"].startswith("text/event-stream")
    assert [f["data"] for f in parse_sse(new.text)] == stored
    assert "x-api-deprecated" not in new.headers
    old = client.get(f"/run/{run_id}/events/replay?after=2", headers=auth)
    assert [f["data"] for f in parse_sse(old.text)] == stored[2:]
    assert old.headers["x-api-deprecated"] == "true"
    successor = f"/v1/runs/{run_id}/events/replay"
    assert old.headers["link"] == f'<{successor}>; rel="successor-version"'
    paced = client.get(f"/v1/runs/{run_id}/events/replay?speed=1000", headers=auth)
    assert [f["data"] for f in parse_sse(paced.text)] == stored
    assert_problem(client.get(f"/v1/runs/{run_id}/events/replay?speed=-1", headers=auth), 422)


def test_encoded_frames_carry_event_to_dict() -> None:
    from agent_sdk.records import EventType

    events = [
        Event("run_x", 1, "model.delta", "t", {"text": "é\u2028\n😀", "n": [1, None, 2.5]}),
        Event("run_x", 2, EventType.TOOL_CALL, "t2", {}),
        Event("run_x", 3, "run_x", "t3", {"nested": {"a": ["b"]}}),
        Event("run_x", 4, "evil\nid: 99", "t4", {}),
    ]
    raw = encode_sse(events)
    assert raw.isascii()
    frames = parse_sse(raw.decode())
    assert [f["data"] for f in frames] == [e.to_dict() for e in events]
    assert [f["id"] for f in frames] == ["1", "2", "3", "4"]
    assert [f["event"] for f in frames] == ["model.delta", "tool.call", "run_x", "message"]


def test_keepalive_comments_fill_silences_and_closing_stops_the_source() -> None:
    closed = []

    async def quiet() -> AsyncIterator[bytes]:
        try:
            yield b"one"
            await asyncio.sleep(0.2)
            yield b"two"
            await asyncio.sleep(10)
            yield b"never"
        finally:
            closed.append(True)

    async def go() -> list[bytes]:
        out = []
        stream = with_keepalive(quiet(), interval=0.05)  # type: ignore[arg-type]
        async for chunk in stream:
            out.append(chunk)
            if out.count(b": keepalive\n\n") >= 4 and b"two" in out:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        return out

    out = asyncio.run(go())
    assert out[0] == b"one" and b"two" in out
    assert out.index(b"two") >= 2  # keepalives came during the first silence
    assert closed == [True]


# -- probes ---------------------------------------------------------------------------------------
def test_ready_fails_when_the_store_is_closed(app: FastAPI, client: TestClient) -> None:
    runtime_of(app).store.close()
    body = assert_problem(client.get("/ready"), 503, "backend_unavailable")
    assert body["checks"] == {"store": "backend_unavailable"}
    assert client.get("/health").status_code == 200  # liveness does no I/O


def test_ready_fails_while_migrations_are_pending(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute("DELETE FROM schema_migrations WHERE version = 1")
    db.close()
    body = assert_problem(client.get("/ready"), 503, "backend_unavailable")
    assert "migrat" in body["detail"]
    assert body["checks"] == {"store": "conflict"}


# -- OpenAPI --------------------------------------------------------------------------------------
V1_OPERATIONS = {
    ("post", "/v1/runs"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{run_id}"),
    ("post", "/v1/runs/{run_id}/cancel"),
    ("post", "/v1/runs/{run_id}/retry"),
    ("post", "/v1/runs/retry"),
    ("get", "/v1/status"),
    ("get", "/v1/runs/{run_id}/events"),
    ("get", "/v1/runs/{run_id}/events/replay"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{session_id}"),
    ("get", "/v1/auth/whoami"),
    ("post", "/v1/admin/orgs"),
    ("get", "/v1/admin/orgs"),
    ("get", "/v1/admin/orgs/{org_id}"),
    ("post", "/v1/admin/api-keys"),
    ("get", "/v1/admin/api-keys"),
    ("get", "/v1/admin/api-keys/{key_id}"),
    ("post", "/v1/admin/api-keys/{key_id}/rotate"),
    ("post", "/v1/admin/api-keys/{key_id}/revoke"),
    ("delete", "/v1/admin/api-keys/{key_id}"),
    ("get", "/v1/admin/audit-logs"),
    ("get", "/v1/admin/audit-logs/export"),
    ("get", "/v1/admin/audit-logs/verify"),
    ("post", "/v1/admin/audit-logs/verify"),
    ("get", "/v1/admin/audit-logs/checkpoints"),
    ("delete", "/v1/admin/runs/{run_id}"),
    ("delete", "/v1/admin/sessions/{session_id}"),
    ("get", "/v1/admin/residency"),
    ("put", "/v1/admin/residency"),
    ("delete", "/v1/admin/residency"),
    ("get", "/v1/admin/encryption-keys"),
    ("post", "/v1/admin/encryption-keys"),
    ("delete", "/v1/admin/encryption-keys"),
    ("post", "/v1/admin/encryption-keys/rewrap"),
    ("get", "/v1/admin/retention"),
    ("put", "/v1/admin/retention"),
    ("delete", "/v1/admin/retention"),
    ("post", "/v1/admin/retention/sweep"),
    ("get", "/v1/admin/redaction"),
    ("put", "/v1/admin/redaction"),
    ("delete", "/v1/admin/redaction"),
    ("put", "/v1/admin/redaction/patterns/{name}"),
    ("delete", "/v1/admin/redaction/patterns/{name}"),
    ("post", "/v1/admin/redaction/preview"),
}


def test_openapi_documents_every_v1_route(client: TestClient, auth: dict[str, str]) -> None:
    doc = client.get("/openapi.json", headers=auth).json()
    assert doc["info"] == {**doc["info"], "title": "agent-sdk", "version": __version__}
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert documented == V1_OPERATIONS | {("get", "/health"), ("get", "/ready")}
    # Each documented operation answers (not 404/405), so the document matches the routes.
    for method, path in V1_OPERATIONS:
        url = path.format(run_id="run_x", session_id="s", org_id="default", key_id="k", name="n")
        resp = client.request(method, url, headers=auth)
        assert resp.status_code != 405 and "no such endpoint" not in resp.text, (method, path)
    create = doc["paths"]["/v1/runs"]["post"]
    assert {"201", "401", "404", "422"} <= set(create["responses"])
    for status in ("401", "404", "422"):
        assert set(create["responses"][status]["content"]) == {"application/problem+json"}
    assert "application/json" in create["responses"]["201"]["content"]
    assert "CreateRun" in json.dumps(create["requestBody"])
    events = doc["paths"]["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(events)
    assert "ApiKey" in doc["components"]["securitySchemes"]
    assert doc["paths"]["/v1/runs"]["get"]["security"] == [{"ApiKey": []}]


def test_documented_models_match_the_records() -> None:
    import dataclasses

    from agent_sdk.records import Run, Session
    from agent_sdk.server.routes.runs import EventModel, RunModel
    from agent_sdk.server.routes.sessions import SessionModel

    for model, record in ((RunModel, Run), (EventModel, Event), (SessionModel, Session)):
        fields = [f.name for f in dataclasses.fields(record)]  # type: ignore[arg-type]
        assert list(model.model_fields) == fields, model


# -- lifespan -------------------------------------------------------------------------------------
def test_shutdown_lets_runs_in_flight_finish(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        token = settings.admin_token_path.read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        run_id = start(client, auth, agent={**PACED, "latency": 0.2})
    runtime = Runtime(settings)
    try:
        assert runtime.runs.get("default", run_id).status == "succeeded"
    finally:
        runtime.close()


def test_a_given_runtime_stays_open_after_shutdown(settings: Settings) -> None:
    runtime = Runtime(settings)
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            assert client.get("/ready").status_code == 200
        runtime.store.check()  # still open: the caller owns it
    finally:
        runtime.close()


def test_a_bad_agents_module_stops_the_server_at_start(settings: Settings) -> None:
    from agent_sdk.errors import ConfigError

    app = create_app(settings.replace(agents=("no_such_module_for_agents",)))
    with pytest.raises(ConfigError, match="no_such_module_for_agents"), TestClient(app):
        pass
