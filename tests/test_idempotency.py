"""Idempotency-Key on run creation (draft-ietf-httpapi-idempotency-key-header): the store
contract on SQLite, the core under a 20-thread race, the HTTP API in-process, and the CLI."""

from __future__ import annotations

import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from contracts.idempotency_store_contract import IdempotencyStoreContract
from contracts.store_contract import OTHER
from fastapi import FastAPI
from typer.testing import CliRunner

from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core.runs import request_hash
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import Conflict, InvalidInput
from agent_sdk.ids import utcnow
from agent_sdk.server.app import create_app
from agent_sdk.store.idempotency import IN_FLIGHT, IdempotencyRecord
from agent_sdk.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

RACERS = 20
BODY: dict[str, Any] = {"agent": "demo", "input": "hello", "metadata": {"ticket": 7}}


# -- the store contract on SQLite -----------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "idempotency.db")
    s.migrate()
    s.ensure_org(OTHER)
    yield s
    s.close()


class TestSQLiteIdempotencyStore(IdempotencyStoreContract):
    """The IdempotencyStore contract on a fresh SQLite file per test."""


# -- helpers --------------------------------------------------------------------------------------
def race(n: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i in range(n), from n threads released at once; results in order (an
    exception is returned in place of its result)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def run_count(rt: Runtime, org_id: str = "default") -> int:
    return len(rt.runs.list(org_id, limit=1000).items)


def creates_audited(rt: Runtime, org_id: str = "default") -> list[dict[str, Any]]:
    entries = rt.store.list_audit(org_id, limit=1000)
    return [e.to_dict() for e in entries if e.action == "runs.create"]


# -- the core -------------------------------------------------------------------------------------
class TestCore:
    @pytest.fixture
    def rt(self, runtime: Runtime) -> Runtime:
        runtime.store.ensure_org("default")
        return runtime

    def test_a_replay_returns_the_run_as_created_and_writes_nothing(self, rt: Runtime) -> None:
        run, replayed = rt.runs.create_idempotent("default", "demo", "hi", idempotency_key="k")
        assert not replayed
        rt.executor.wait_idle(10)
        again, replayed = rt.runs.create_idempotent("default", "demo", "hi", idempotency_key="k")
        assert replayed and again == run  # queued, as first answered; the run itself went on
        assert rt.runs.get("default", run.id).status.terminal
        assert run_count(rt) == 1
        [record] = creates_audited(rt)  # no second record for a replay
        assert record["details"] == {"agent": "demo", "idempotency_key": "k"}

    def test_create_without_a_key_is_unchanged(self, rt: Runtime) -> None:
        a = rt.runs.create("default", "demo", "hi")
        b = rt.runs.create("default", "demo", "hi")
        assert a.id != b.id
        assert creates_audited(rt)[0]["details"] == {"agent": "demo"}

    def test_the_same_key_with_another_request_is_invalid(self, rt: Runtime) -> None:
        rt.runs.create("default", "demo", "hi", metadata={"a": 1}, idempotency_key="k")
        for change in (
            {"input": "bye"},
            {"metadata": {"a": 2}},
            {"session_id": "s1"},
            {"agent": "other"},
            {"script": [{"text": "x"}]},
        ):
            kwargs: dict[str, Any] = {"agent": "demo", "input": "hi", "metadata": {"a": 1}}
            kwargs |= change
            with pytest.raises(InvalidInput, match="different request"):
                rt.runs.create("default", idempotency_key="k", **kwargs)
        assert run_count(rt) == 1

    def test_no_metadata_and_empty_metadata_are_the_same_request(self) -> None:
        assert request_hash("a", "i", None, None, None) == request_hash("a", "i", None, {}, None)
        spec1 = {"name": "x", "model": "scripted"}
        spec2 = {"model": "scripted", "name": "x"}
        assert request_hash(spec1, "i", None, None, None) == request_hash(
            spec2, "i", None, None, None
        )

    def test_a_failed_request_claims_nothing(self, rt: Runtime) -> None:
        with pytest.raises(InvalidInput):
            rt.runs.create("default", "no-such-agent", "hi", idempotency_key="k")
        run, replayed = rt.runs.create_idempotent("default", "demo", "hi", idempotency_key="k")
        assert not replayed and run_count(rt) == 1

    def test_twenty_threads_with_one_key_create_one_run(self, rt: Runtime) -> None:
        results = race(
            RACERS,
            lambda i: rt.runs.create_idempotent("default", "demo", "race", idempotency_key="r"),
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sorted(replayed for _, replayed in results) == [False] + [True] * (RACERS - 1)
        assert len({run.id for run, _ in results}) == 1
        assert run_count(rt) == 1
        assert len(creates_audited(rt)) == 1

    def test_a_claim_in_flight_is_a_conflict(self, rt: Runtime) -> None:
        now = utcnow()
        rt.store.claim_idempotency_key(
            IdempotencyRecord(
                "default",
                "busy",
                request_hash("demo", "hi", None, None, None),
                IN_FLIGHT,
                now,
                "9999-01-01T00:00:00.000000Z",
            )
        )
        with pytest.raises(Conflict, match="still in progress"):
            rt.runs.create("default", "demo", "hi", idempotency_key="busy")
        # A different request under that key is refused as such, in flight or not.
        with pytest.raises(InvalidInput, match="different request"):
            rt.runs.create("default", "demo", "other", idempotency_key="busy")
        assert run_count(rt) == 0

    def test_keys_expire_after_the_ttl(self, settings: Settings) -> None:
        rt = Runtime(settings.replace(idempotency_ttl=1.0))
        try:
            rt.store.ensure_org("default")
            first = rt.runs.create("default", "demo", "hi", idempotency_key="k")
            assert rt.runs.create("default", "demo", "hi", idempotency_key="k").id == first.id
            time.sleep(1.1)
            # Expired: the key is free again, even for another request, and the old claim is
            # replaced in place.
            later, replayed = rt.runs.create_idempotent(
                "default", "demo", "changed", idempotency_key="k"
            )
            assert not replayed and later.id != first.id
            assert rt.runs.create("default", "demo", "changed", idempotency_key="k").id == later.id
        finally:
            rt.close(wait=True, timeout=10)


# -- HTTP -----------------------------------------------------------------------------------------
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
    return bearer(settings.admin_token_path.read_text().strip())


def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    return body


def post(
    client: TestClient, headers: dict[str, str], key: str | bytes | None, body: Any = None
) -> Any:
    extra: dict[str, Any] = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        "/v1/runs", json=BODY if body is None else body, headers={**headers, **extra}
    )


class TestHTTP:
    def test_the_same_key_and_body_replays_the_first_response(
        self, client: TestClient, root: dict[str, str], app: FastAPI
    ) -> None:
        first = post(client, root, "key-1")
        assert first.status_code == 201, first.text
        assert "Idempotent-Replayed" not in first.headers
        again = post(client, root, "key-1")
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["Location"] == first.headers["Location"]
        listed = client.get("/v1/runs", headers=root).json()["data"]
        assert [r["id"] for r in listed] == [first.json()["id"]]
        assert len(creates_audited(app.state.runtime)) == 1

    def test_key_order_spacing_and_the_quoted_form_do_not_matter(
        self, client: TestClient, root: dict[str, str]
    ) -> None:
        first = post(client, root, "key-2")
        raw = '{ "metadata": {"ticket": 7},  "input": "hello", "agent": "demo" }'
        again = client.post(
            "/v1/runs",
            content=raw,
            headers={**root, "Idempotency-Key": '"key-2"', "Content-Type": "application/json"},
        )
        assert again.status_code == 201, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]

    def test_the_same_key_with_another_body_is_422(
        self, client: TestClient, root: dict[str, str]
    ) -> None:
        post(client, root, "key-3")
        body = problem(post(client, root, "key-3", {**BODY, "input": "changed"}), 422)
        assert body["code"] == "invalid_input"
        assert "different request" in body["detail"]
        assert len(client.get("/v1/runs", headers=root).json()["data"]) == 1

    def test_a_request_while_the_first_is_in_flight_is_409(
        self, client: TestClient, root: dict[str, str], app: FastAPI
    ) -> None:
        # The SQLite store never leaves a claim in flight (see test_twenty_parallel_requests...);
        # a store that splits claim and completion would, and this is the answer it must get.
        rt: Runtime = app.state.runtime
        digest = request_hash("demo", "hello", None, {"ticket": 7}, None)
        far = "9999-01-01T00:00:00.000000Z"
        claim = IdempotencyRecord("default", "key-4", digest, IN_FLIGHT, utcnow(), far)
        assert rt.store.claim_idempotency_key(claim) is None
        body = problem(post(client, root, "key-4"), 409)
        assert body["code"] == "conflict" and "still in progress" in body["detail"]
        assert client.get("/v1/runs", headers=root).json()["data"] == []

    def test_twenty_parallel_requests_with_one_key_create_one_run(
        self, app: FastAPI, client: TestClient, root: dict[str, str]
    ) -> None:
        # A TestClient outside its `with` block runs each request on an event loop of its own,
        # so these twenty handlers really run at once, in twenty threads, against one database.
        def send(_: int) -> Any:
            return post(TestClient(app), root, "race-key")

        responses = race(RACERS, send)
        assert not [r for r in responses if isinstance(r, Exception)], responses
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * RACERS, [r.text for r in responses]
        replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
        assert replayed.count(None) == 1 and replayed.count("true") == RACERS - 1
        assert len({r.json()["id"] for r in responses}) == 1
        assert len(client.get("/v1/runs", headers=root).json()["data"]) == 1
        assert len(creates_audited(app.state.runtime)) == 1

    def test_keys_are_scoped_to_the_org(self, client: TestClient, root: dict[str, str]) -> None:
        assert client.post("/v1/admin/orgs", json={"id": "org-b"}, headers=root).status_code == 201
        in_a = post(client, root, "shared")
        in_b = post(client, {**root, "X-Org-Id": "org-b"}, "shared")
        assert in_b.status_code == 201 and "Idempotent-Replayed" not in in_b.headers
        assert in_b.json()["id"] != in_a.json()["id"]
        assert in_b.json()["org_id"] == "org-b"
        # ... and even another body is fine there: B's key is not A's.
        other = post(client, {**root, "X-Org-Id": "org-b"}, "shared2", {**BODY, "input": "x"})
        assert other.status_code == 201

    @pytest.mark.parametrize(
        "key",
        ["x" * 256, "caf\u00e9".encode(), b"\xff\xfe", "", '""', "a\tb"],
        ids=["too-long", "utf8", "bytes", "empty", "empty-quoted", "tab"],
    )
    def test_bad_keys_are_refused(
        self, client: TestClient, root: dict[str, str], key: str | bytes
    ) -> None:
        body = problem(post(client, root, key), 422)
        assert "Idempotency-Key" in body["detail"]
        assert client.get("/v1/runs", headers=root).json()["data"] == []

    def test_the_longest_key_is_accepted(self, client: TestClient, root: dict[str, str]) -> None:
        key = "~" * 255
        assert post(client, root, key).status_code == 201
        assert post(client, root, key).headers["Idempotent-Replayed"] == "true"

    def test_keys_expire(self, isolated_env: dict[str, str]) -> None:
        env = {**isolated_env, "AGENT_SDK_IDEMPOTENCY_TTL": "1"}
        settings = load_settings(env=env, cwd=Path.cwd())
        assert settings.server.idempotency_ttl == 1.0
        with TestClient(create_app(settings)) as client:
            root = bearer(settings.admin_token_path.read_text().strip())
            first = post(client, root, "short-lived")
            assert post(client, root, "short-lived").headers["Idempotent-Replayed"] == "true"
            time.sleep(1.1)
            later = post(client, root, "short-lived")
            assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
            assert later.json()["id"] != first.json()["id"]

    def test_the_openapi_documents_the_header(
        self, client: TestClient, root: dict[str, str]
    ) -> None:
        op = client.get("/openapi.json", headers=root).json()["paths"]["/v1/runs"]["post"]
        [param] = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
        assert param["in"] == "header" and not param.get("required", False)
        assert "422" in param["description"] and "409" in param["description"]
        assert "Idempotent-Replayed" in op["responses"]["201"]["headers"]
        assert "409" in op["responses"]


# -- CLI ------------------------------------------------------------------------------------------
runner = CliRunner()


def create(*extra: str) -> Any:
    return runner.invoke(
        cli_app, ["runs", "create", "--agent", "demo", "--input", "hi", "-o", "json", *extra]
    )


class TestCLI:
    def test_the_same_key_returns_the_same_run(self) -> None:
        first = create("--idempotency-key", "ci-42-1")
        assert first.exit_code == 0, first.stderr
        assert "idempotency key:" not in first.stderr  # given, so not announced
        again = create("--idempotency-key", "ci-42-1")
        assert again.exit_code == 0, again.stderr
        assert json.loads(again.stdout)["id"] == json.loads(first.stdout)["id"]
        listed = runner.invoke(cli_app, ["runs", "list", "-o", "json"])
        assert len(json.loads(listed.stdout)) == 1

    def test_without_a_flag_a_key_is_generated_printed_and_reusable(self) -> None:
        first = create()
        assert first.exit_code == 0, first.stderr
        line = next(x for x in first.stderr.splitlines() if x.startswith("idempotency key: "))
        key = line.removeprefix("idempotency key: ").split(";")[0]
        uuid.UUID(key)
        assert f"re-run with --idempotency-key {key} to make a retry safe" in line
        retry = create("--idempotency-key", key)
        assert json.loads(retry.stdout)["id"] == json.loads(first.stdout)["id"]
        # Two runs without the flag are two runs: each gets its own key.
        assert json.loads(create().stdout)["id"] != json.loads(first.stdout)["id"]

    def test_the_same_key_with_another_input_fails(self) -> None:
        assert create("--idempotency-key", "k").exit_code == 0
        result = runner.invoke(
            cli_app,
            ["runs", "create", "-a", "demo", "-i", "bye", "--idempotency-key", "k", "-o", "json"],
        )
        assert result.exit_code == 2  # InvalidInput: a usage error
        error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
        assert error["code"] == "invalid_input" and "different request" in error["message"]

    def test_a_bad_key_is_an_error(self) -> None:
        result = create("--idempotency-key", "x" * 300)
        assert result.exit_code == 2
        assert "Idempotency-Key" in result.stderr
