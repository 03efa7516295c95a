"""Text no store can hold, through the HTTP API on SQLite and on PostgreSQL (issue 11, item 4).

A lone surrogate or a NUL anywhere in a request (body keys and values at any depth, path, query,
header) is a 422 ``invalid_input`` naming where it was, and nothing is stored, with or without an
Idempotency-Key; so are a body that is not UTF-8 and one nested too deep. And a row that holds
such text already (stored before the check, or around it) still lists, shows, cancels and
streams, with U+FFFD in place of each lone surrogate: no answer is a 5xx.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from raw_sql import raw_sql

from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.server.request_text import MAX_JSON_DEPTH

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = '{"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}'


def body(**fields: str) -> bytes:
    """A run creation as raw JSON text: values are spliced in as written, escapes and all."""
    parts = {"agent": NOOP, "input": '"x"', **fields}
    return ("{" + ",".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()


def nested(depth: int) -> str:
    return "[" * (depth - 1) + "]" * (depth - 1)


def loc(dotted: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".")]


DEEP = '{"k": ' + nested(1000) + "}"
TOO_DEEP = '{"k": ' + nested(MAX_JSON_DEPTH) + "}"
# (name, raw body, the loc the answer names; None: the depth limit, whose loc is deep)
HOSTILE: list[tuple[str, bytes, list[Any] | None]] = [
    ("surrogate value", body(metadata='{"k": "\\udfff"}'), loc("body.metadata.k")),
    ("surrogate key", body(metadata='{"\\udfff": 1}'), loc("body.metadata.\ufffd")),
    ("high surrogate alone", body(input='"a\\ud800b"'), loc("body.input")),
    ("pair in the wrong order", body(input='"\\ude00\\ud83d"'), loc("body.input")),
    ("NUL in the input", body(input='"a\\u0000"'), loc("body.input")),
    ("NUL deep", body(metadata='{"k": [1, {"j": "a\\u0000"}]}'), loc("body.metadata.k.1.j")),
    ("NUL key", body(metadata='{"a\\u0000": 1}'), loc("body.metadata.a\x00")),
    ("agent name", body(agent='{"name": "n\\udfff", "model": "scripted"}'), loc("body.agent.name")),
    ("script text", body(script='[{"text": "\\udfff"}]'), loc("body.script.0.text")),
    ("NUL in a session id", body(session_id='"s\\u0000"'), loc("body.session_id")),
    ("1,000 levels deep", body(metadata=DEEP), loc("body")),
    ("one level too deep", body(metadata=TOO_DEEP), None),
    ("raw invalid UTF-8", body(input='"a"').replace(b'"a"', b'"a\xff"'), loc("body")),
    ("a surrogate as raw bytes", body(input='"a"').replace(b'"a"', b'"\xed\xbf\xbf"'), loc("body")),
]


def post_run(
    edge_client: TestClient, edge_auth: dict[str, str], raw: bytes, key: str | None = None
) -> Any:
    headers = {**edge_auth, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return edge_client.post("/v1/runs", content=raw, headers=headers)


def assert_refused(resp: Any, where: list[Any] | None) -> dict[str, Any]:
    assert resp.status_code == 422, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = json.loads(resp.content.decode("utf-8"))  # strict UTF-8
    assert problem["code"] == "invalid_input", problem
    [error] = problem["errors"]
    if where is not None:
        assert error["loc"] == where, problem
    else:
        assert str(MAX_JSON_DEPTH) in error["msg"], problem
    assert ".".join(str(p) for p in error["loc"]) in problem["detail"], problem
    return problem


def stored_runs(edge_client: TestClient, edge_auth: dict[str, str]) -> list[dict[str, Any]]:
    resp = edge_client.get("/v1/runs", headers=edge_auth)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


@pytest.mark.parametrize(("name", "raw", "where"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_text_no_store_can_hold_is_refused_naming_the_field_and_nothing_is_stored(
    edge_client: TestClient,
    edge_auth: dict[str, str],
    edge_runtime: Runtime,
    name: str,
    raw: bytes,
    where: Any,
) -> None:
    for key in (None, f"key-{len(raw)}"):
        for _ in range(2):  # a retrying edge_client gets the same answer, and makes nothing
            assert_refused(post_run(edge_client, edge_auth, raw, key), where)
    assert stored_runs(edge_client, edge_auth) == []
    assert edge_runtime.store.list_runs("default", limit=10).items == []


def test_text_a_store_can_hold_is_accepted_up_to_the_documented_depth(
    edge_client: TestClient, edge_auth: dict[str, str]
) -> None:
    # A surrogate pair is one character (an emoji), escaped or raw; the depth limit is inclusive.
    deep = '{"k": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    for raw in (
        body(input='"\\ud83d\\ude00 \\u00e9"', metadata='{"\\u263a": "\\ud83d\\ude00"}'),
        body(input='"\U0001f600"'),
        body(metadata=deep),
    ):
        resp = post_run(edge_client, edge_auth, raw)
        assert resp.status_code == 201, (raw[:80], resp.text)
    runs = stored_runs(edge_client, edge_auth)
    assert len(runs) == 3
    assert {r["input"] for r in runs} >= {"\U0001f600 é", "\U0001f600"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "where"),
    [
        ("GET", "/v1/runs/run_%00x", {}, ["path"]),
        ("POST", "/v1/runs/run_%00x/cancel", {}, ["path"]),
        ("GET", "/v1/runs?session_id=a%00b", {}, ["query", "session_id"]),
        ("GET", "/v1/runs?a%00=1", {}, ["query", "a\x00"]),
        ("GET", "/v1/runs", {"X-Trace": "a\x00b"}, ["header", "x-trace"]),
    ],
)
def test_a_nul_in_a_path_query_or_header_is_refused_naming_it(
    edge_client: TestClient,
    edge_auth: dict[str, str],
    method: str,
    path: str,
    headers: Any,
    where: Any,
) -> None:
    resp = edge_client.request(method, path, headers={**edge_auth, **headers})
    assert_refused(resp, where)


# -- rows that hold such text already ------------------------------------------------------------
def finished_run(edge_client: TestClient, edge_auth: dict[str, str], **extra: str) -> str:
    resp = post_run(edge_client, edge_auth, body(**extra))
    assert resp.status_code == 201, resp.text
    rid: str = resp.json()["id"]
    for _ in range(5000):
        if edge_client.get(f"/v1/runs/{rid}", headers=edge_auth).json()["status"] == "succeeded":
            return rid
    raise AssertionError("the run did not finish")


# JSON text with escapes of lone surrogates: both stores hold it (it is ASCII).
BAD_METADATA = '{"k": "a\\udfffb", "\\ud800": [1, "\\ude00"]}'
SHOWN_METADATA = {"k": "a\ufffdb", "\ufffd": [1, "\ufffd"]}


def test_a_stored_row_with_lone_surrogates_still_lists_shows_cancels_and_streams(
    edge_client: TestClient, edge_auth: dict[str, str], edge_settings: Settings
) -> None:
    rid = finished_run(edge_client, edge_auth)
    raw_sql(edge_settings, "UPDATE runs SET metadata = ? WHERE id = ?", (BAD_METADATA, rid))
    raw_sql(
        edge_settings,
        "UPDATE events SET data = ? WHERE run_id = ? AND seq = 1",
        ('{"agent": "\\udfff"}', rid),
    )
    answers = {
        "list": edge_client.get("/v1/runs", headers=edge_auth),
        "show": edge_client.get(f"/v1/runs/{rid}", headers=edge_auth),
        "cancel": edge_client.post(f"/v1/runs/{rid}/cancel", headers=edge_auth),
        "events": edge_client.get(f"/v1/runs/{rid}/events", headers=edge_auth),
        "stream": edge_client.get(f"/v1/runs/{rid}/events?stream=true", headers=edge_auth),
        "replay": edge_client.get(f"/v1/runs/{rid}/events/replay", headers=edge_auth),
    }
    for what, resp in answers.items():
        assert resp.status_code < 300, (what, resp.status_code, resp.text)
        text = resp.content.decode("utf-8")  # strict: every answer is valid UTF-8
        assert "\\udfff" not in text and "\\ud800" not in text, (what, text)
    assert answers["list"].json()["data"][0]["metadata"] == SHOWN_METADATA
    assert answers["show"].json()["metadata"] == SHOWN_METADATA
    assert answers["cancel"].json()["metadata"] == SHOWN_METADATA
    assert answers["events"].json()["data"][0]["data"] == {"agent": "\ufffd"}
    for what in ("stream", "replay"):
        first = answers[what].text.split("\n\n")[0]
        frame = json.loads(first.split("data: ", 1)[1])
        assert frame["data"] == {"agent": "\ufffd"}, (what, first)


def test_an_idempotent_replay_of_a_stored_answer_with_a_lone_surrogate_is_no_5xx(
    edge_client: TestClient, edge_auth: dict[str, str], edge_settings: Settings
) -> None:
    raw = body(metadata='{"k": "v"}')
    first = post_run(edge_client, edge_auth, raw, key="replay-me")
    assert first.status_code == 201, first.text
    stored = first.json()
    stored["metadata"] = {"k": "\udfff"}
    response = json.dumps(stored)  # ASCII: the escape of the surrogate
    sql = "UPDATE idempotency_keys SET response = ? WHERE key = ?"
    raw_sql(edge_settings, sql, (response, "replay-me"))
    again = post_run(edge_client, edge_auth, raw, key="replay-me")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["metadata"] == {"k": "\ufffd"}
    assert len(stored_runs(edge_client, edge_auth)) == 1


def test_every_route_renders_json_with_the_one_robust_encoder() -> None:
    # Starlette's own JSONResponse raises on a lone surrogate: a route using it would answer 500
    # for a row that holds one. The server's JSONResponse (server/responses.py) is the one place.
    import agent_sdk.server as server

    root = Path(server.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "responses.py":
            continue
        source = path.read_text()
        for needle in ("fastapi.responses import JSONResponse", "starlette.responses import JSON"):
            assert needle not in source, path
        ours = "server.responses import JSONResponse"
        assert "JSONResponse" not in source or ours in source, path


# A lone surrogate as UTF-8 would spell it, and bytes that are no UTF-8 at all, beside a NUL.
RAW_INPUT = b"in \xed\xbf\xbf put"
RAW_OUTPUT = b"out\x00 \xff"


def test_a_row_holding_bytes_that_are_not_utf8_still_lists_shows_and_cancels(
    edge_client: TestClient, edge_auth: dict[str, str], edge_settings: Settings, engine: str
) -> None:
    rid = finished_run(edge_client, edge_auth)
    sql = "UPDATE runs SET input = CAST(? AS TEXT), output = CAST(? AS TEXT) WHERE id = ?"
    if engine == "postgres":
        # PostgreSQL holds only valid UTF-8 without NUL: no such row can exist there.
        import psycopg

        with pytest.raises(psycopg.Error):
            raw_sql(edge_settings, sql.replace("?", "convert_from(?, 'UTF8')", 2),
                    (RAW_INPUT, RAW_OUTPUT, rid))  # fmt: skip
    else:
        raw_sql(edge_settings, sql, (RAW_INPUT, RAW_OUTPUT, rid))
    answers = {
        "list": edge_client.get("/v1/runs", headers=edge_auth),
        "show": edge_client.get(f"/v1/runs/{rid}", headers=edge_auth),
        "cancel": edge_client.post(f"/v1/runs/{rid}/cancel", headers=edge_auth),
        "events": edge_client.get(f"/v1/runs/{rid}/events", headers=edge_auth),
    }
    for what, resp in answers.items():
        assert resp.status_code < 300, (what, resp.status_code, resp.text)
        resp.content.decode("utf-8")
    if engine == "sqlite":
        shown = answers["show"].json()
        assert (shown["input"], shown["output"]) == ("in \ufffd\ufffd\ufffd put", "out\x00 \ufffd")
        assert answers["list"].json()["data"][0]["input"] == shown["input"]
        assert answers["cancel"].json()["input"] == shown["input"]
