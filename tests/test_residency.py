"""Data residency (governance, part 4): an org pinned to a region is served only by servers,
workers and local CLIs of that region (``AGENT_SDK_DATA_REGION``), on SQLite and Postgres,
through the HTTP API, the CLI and the workers; and nobody learns the region of an org they
cannot act in.

The world of most tests: ``org-eu`` pinned to eu, ``org-us`` pinned to us, ``org-any`` not
pinned, each with a finished run in a session and an API key; servers of region eu."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings, load_settings
from agent_sdk.core import residency
from agent_sdk.core.recovery import recover
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.worker import Worker
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.errors import ConfigError, InvalidInput
from agent_sdk.records import RunStatus
from agent_sdk.server.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
ORGS = {"org-eu": "eu", "org-us": "us", "org-any": None}
RESIDENCY_PATH = "/v1/admin/residency"
# Seconds to wait for what is bound to happen: generous, as a busy 2-core CI is slow, not wrong.
PATIENCE = 60.0
HOSTILE_REGIONS: list[Any] = [
    "EU", "Eu", "eu_west", "-eu", "eu-", "eu--west", "1eu", "e u", " eu", "eu ", "eu\n", "eu\x00",
    "é", "eu/../us", "../us", "eu;drop", "a" * 33, "", 5, 1.5, True, ["eu"], {"region": "eu"},
]  # fmt: skip


# -- the world ----------------------------------------------------------------------------------
@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of one test, on the SQLite or the Postgres store (also for the CLI)."""
    import os

    return dict(os.environ)


def settings_for(env: dict[str, str], **extra: str) -> Settings:
    full = {**env, **{f"AGENT_SDK_{k.upper()}": v for k, v in extra.items()}}
    return load_settings(env=full, cwd=Path.cwd())


@dataclass
class World:
    runs: dict[str, str]  # org -> a finished run
    keys: dict[str, str]  # org -> the id of an admin key (no admin:platform)
    tokens: dict[str, str]  # org -> that key's token


def populate(settings: Settings) -> World:
    """Orgs, runs, sessions and keys, written by a region-less runtime (it serves every org)."""
    rt = Runtime(settings)
    runs, keys, tokens = {}, {}, {}
    try:
        for org, region in ORGS.items():
            rt.orgs.create(org)
            runs[org] = rt.runs.create(org, NOOP, "hello", session_id=f"s-{org}").id
            key, token = rt.keys.create(org, name="admin", role="admin")
            keys[org], tokens[org] = key.id, token
            if region is not None:
                rt.residency.set(org, region)
        rt.executor.wait_idle(10)
    finally:
        rt.close(wait=True, timeout=10)
    return World(runs, keys, tokens)


@pytest.fixture
def world(env: dict[str, str]) -> World:
    return populate(settings_for(env))


@pytest.fixture
def eu(env: dict[str, str], world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(env, data_region="eu"))) as client:
        yield client


@pytest.fixture
def root(env: dict[str, str], eu: TestClient) -> dict[str, str]:
    """The bootstrap key: admin of `default` (not pinned), with admin:platform."""
    token = settings_for(env).admin_token_path.read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def as_org(root: dict[str, str], org: str) -> dict[str, str]:
    return {**root, "X-Org-Id": org}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    return body


def org_routes(client: TestClient, auth: dict[str, str]) -> list[tuple[str, str]]:
    """Every (method, path template) of the /v1 API, from the OpenAPI document, so a route added
    later is covered without editing this test."""
    doc = client.get("/openapi.json", headers=auth).json()
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
        and path.startswith("/v1/")
        and path != RESIDENCY_PATH
    ]


def fill(template: str, world: World, org: str) -> str:
    values = {
        "run_id": world.runs[org],
        "session_id": f"s-{org}",
        "key_id": world.keys[org],
        "org_id": org,
    }
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + values.get(path[start + 1 : end], "x") + path[end + 1 :]
    return path


def snapshot(settings: Settings, org: str, world: World) -> tuple[Any, ...]:
    """What a refused request must leave untouched: the org's run, its events, session, key."""
    rt = Runtime(settings)
    try:
        run = rt.runs.get(org, world.runs[org])
        events = [(e.seq, e.type) for e in rt.runs.events(org, run.id)]
        session = rt.sessions.get(org, f"s-{org}")
        key = rt.keys.get(org, world.keys[org])
        return run.to_dict(), events, session.to_dict(), key.revoked_at, rt.residency.show(org)
    finally:
        rt.close(wait=False)


# -- HTTP: the gate -----------------------------------------------------------------------------
def test_every_route_refuses_an_org_of_another_region_and_changes_nothing(
    env: dict[str, str], world: World, eu: TestClient, root: dict[str, str]
) -> None:
    before = snapshot(settings_for(env), "org-us", world)
    routes = org_routes(eu, root)
    assert len(routes) >= 15, routes  # runs, events, sessions, status, orgs, keys, audit, ...
    for method, template in routes:
        path = fill(template, world, "org-us")
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        resp = eu.request(method, path, headers=as_org(root, "org-us"), json=body)
        got = problem(resp, 403, "wrong_region")
        assert "'us'" in got["detail"] and "'eu'" in got["detail"], got
        assert (got["org_region"], got["server_region"]) == ("us", "eu")
        assert "region 'us'" in got["hint"]
    # The deprecated unversioned paths are the same handlers behind the same gate.
    us_run = world.runs["org-us"]
    for path in ("/runs", f"/runs/{us_run}", "/sessions", f"/run/{us_run}/events/replay"):
        problem(eu.get(path, headers=as_org(root, "org-us")), 403, "wrong_region")
    assert snapshot(settings_for(env), "org-us", world) == before


def test_the_org_s_own_key_is_refused_too_and_told_where_to_go(
    world: World, eu: TestClient
) -> None:
    got = problem(eu.get("/v1/runs", headers=bearer(world.tokens["org-us"])), 403, "wrong_region")
    assert got["hint"] == "send the request to a server of region 'us'"
    # ...and it may read its residency here, which is how it finds out without the error.
    resp = eu.get(RESIDENCY_PATH, headers=bearer(world.tokens["org-us"]))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "org_id": "org-us", "region": "us", "server_region": "eu", "served_here": False,
    }  # fmt: skip


@pytest.mark.parametrize("org", ["org-eu", "org-any"])
def test_orgs_of_this_region_and_unpinned_orgs_are_served(
    org: str, world: World, eu: TestClient, root: dict[str, str]
) -> None:
    headers = as_org(root, org)
    for path in ("/v1/runs", f"/v1/runs/{world.runs[org]}", f"/v1/runs/{world.runs[org]}/events",
                 "/v1/sessions", f"/v1/sessions/s-{org}", "/v1/status", "/v1/admin/api-keys",
                 "/v1/admin/audit-logs", "/v1/auth/whoami", f"/v1/admin/orgs/{org}"):  # fmt: skip
        assert eu.get(path, headers=headers).status_code == 200, path
    created = eu.post("/v1/runs", json={"agent": NOOP, "input": "x"}, headers=headers)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + PATIENCE
    while (run := eu.get(f"/v1/runs/{created.json()['id']}", headers=headers).json())[
        "status"
    ] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run["status"] == "succeeded"
    own = eu.get("/v1/runs", headers=bearer(world.tokens[org]))
    assert own.status_code == 200 and world.runs[org] in {r["id"] for r in own.json()["data"]}


def test_a_region_less_server_serves_every_org(env: dict[str, str], world: World) -> None:
    with TestClient(create_app(settings_for(env))) as client:
        for org in ORGS:
            resp = client.get(f"/v1/runs/{world.runs[org]}", headers=bearer(world.tokens[org]))
            assert resp.status_code == 200, resp.text


# -- HTTP: what callers of other orgs learn ------------------------------------------------------
def test_a_caller_of_another_org_learns_nothing_about_its_region(
    world: World, eu: TestClient
) -> None:
    """A key of org-eu naming org-us (pinned elsewhere), org-any (served here) or an unknown
    org gets one and the same refusal, word for word but the org's name: whether the org
    exists, or where it is kept, does not show."""
    key = bearer(world.tokens["org-eu"])
    bodies = {}
    for target in ("org-us", "org-any", "org-nowhere"):
        for method, path in (("GET", "/v1/runs"), ("POST", "/v1/runs/retry"),
                             ("GET", RESIDENCY_PATH), ("PUT", RESIDENCY_PATH)):  # fmt: skip
            resp = eu.request(
                method, path, headers={**key, "X-Org-Id": target}, json={"region": "eu"}
            )
            got = problem(resp, 403, "permission_denied")
            text = json.dumps(got)
            assert "region" not in text and "'us'" not in text, got
            got.pop("request_id")
            bodies[target, method, path] = json.dumps(got).replace(target, "ORG")
    for method, path in {(m, p) for _, m, p in bodies}:
        assert len({bodies[t, method, path] for t in ("org-us", "org-any", "org-nowhere")}) == 1


@pytest.mark.parametrize(
    "header", ["../org-us", "org-us/../org-eu", "org us", "org-us\t", "o" * 65, "%2e%2e", ""]
)
def test_a_forged_org_header_is_refused_before_any_region_is_looked_at(
    header: str, eu: TestClient, root: dict[str, str]
) -> None:
    resp = eu.get("/v1/runs", headers={**root, "X-Org-Id": header})
    assert resp.status_code in (400, 403, 404), resp.text
    assert "region" not in resp.text


def test_forged_tokens_get_401_and_no_region(world: World, eu: TestClient) -> None:
    real = world.tokens["org-us"]
    for token in (real[:-1] + ("A" if real[-1] != "A" else "B"), "asdk_" + "x" * 40, "a.b.c"):
        for path in ("/v1/runs", RESIDENCY_PATH):
            resp = eu.get(path, headers={**bearer(token), "X-Org-Id": "org-us"})
            problem(resp, 401, "unauthenticated")
            assert "region" not in resp.text


# -- HTTP: reading and moving an org's region ------------------------------------------------------
def test_an_org_admin_reads_its_region_but_cannot_move_it(
    env: dict[str, str], world: World, eu: TestClient
) -> None:
    key = bearer(world.tokens["org-eu"])
    assert eu.get(RESIDENCY_PATH, headers=key).json()["region"] == "eu"
    for method, body in (("PUT", {"region": "us"}), ("PUT", {"region": None}), ("DELETE", None)):
        got = problem(eu.request(method, RESIDENCY_PATH, headers=key, json=body), 403,
                      "permission_denied")  # fmt: skip
        assert "admin:platform" in got["detail"]
    assert eu.get(RESIDENCY_PATH, headers=key).json()["region"] == "eu"
    rt = Runtime(settings_for(env))
    try:
        denied = [e for e in rt.audit.tail("org-eu") if e.outcome == "denied"]
        assert [e.action for e in denied] == ["residency.set", "residency.clear", "residency.clear"]
    finally:
        rt.close(wait=False)


def test_a_platform_admin_moves_an_org_and_this_server_obeys_at_once(
    env: dict[str, str], world: World, eu: TestClient, root: dict[str, str]
) -> None:
    headers = as_org(root, "org-any")
    assert eu.get("/v1/runs", headers=headers).status_code == 200
    moved = eu.put(RESIDENCY_PATH, json={"region": "us"}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "org_id": "org-any", "region": "us", "server_region": "eu", "served_here": False,
    }  # fmt: skip
    problem(eu.get("/v1/runs", headers=headers), 403, "wrong_region")
    # Fixed from this very server: the residency routes are not region-checked.
    back = eu.delete(RESIDENCY_PATH, headers=headers)
    assert back.status_code == 200 and back.json()["region"] is None
    assert eu.get("/v1/runs", headers=headers).status_code == 200
    assert eu.put(RESIDENCY_PATH, json={"region": "eu-west-1"}, headers=headers).status_code == 200
    problem(eu.get("/v1/runs", headers=headers), 403, "wrong_region")
    assert eu.put(RESIDENCY_PATH, json={"region": None}, headers=headers).json()["region"] is None
    rt = Runtime(settings_for(env))
    try:
        trail = [(e.action, e.details, e.outcome) for e in rt.audit.tail("org-any")
                 if e.action.startswith("residency.")]  # fmt: skip
    finally:
        rt.close(wait=False)
    assert trail == [
        ("residency.set", {"region": "us", "previous": None}, "success"),
        ("residency.clear", {"region": None, "previous": "us"}, "success"),
        ("residency.set", {"region": "eu-west-1", "previous": None}, "success"),
        ("residency.clear", {"region": None, "previous": "eu-west-1"}, "success"),
    ]


def test_hostile_region_values_are_refused(
    world: World, eu: TestClient, root: dict[str, str]
) -> None:
    headers = as_org(root, "org-eu")
    for value in HOSTILE_REGIONS:
        resp = eu.put(RESIDENCY_PATH, json={"region": value}, headers=headers)
        problem(resp, 422, "invalid_input")
        assert eu.get(RESIDENCY_PATH, headers=headers).json()["region"] == "eu"


def test_malformed_and_oversized_bodies_and_unknown_orgs(
    world: World, eu: TestClient, root: dict[str, str]
) -> None:
    headers = as_org(root, "org-eu")
    for body in ({}, {"region": "eu", "extra": 1}, ["eu"], "eu"):
        problem(eu.put(RESIDENCY_PATH, json=body, headers=headers), 422, "invalid_input")
    huge = eu.put(RESIDENCY_PATH, content=b'{"region": "' + b"e" * 2_000_000 + b'"}',
                  headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    assert huge.status_code == 413
    problem(eu.get(RESIDENCY_PATH, headers=as_org(root, "org-nowhere")), 404, "not_found")
    problem(eu.put(RESIDENCY_PATH, json={"region": "eu"}, headers=as_org(root, "org-nowhere")),
            404, "not_found")  # fmt: skip
    assert eu.get(RESIDENCY_PATH, headers=headers).json()["region"] == "eu"


def test_another_process_sees_a_move_within_the_cache_time(
    env: dict[str, str], world: World, eu: TestClient, root: dict[str, str]
) -> None:
    cache = eu.app.state.runtime.residency  # type: ignore[attr-defined]
    cache.ttl = 2.0
    cache.invalidate()  # the recovery at start has read every org with the default time
    headers = as_org(root, "org-any")
    # The cache has no clock to inject: its entry is timed from when it was filled, somewhere
    # between these two readings, however long the steps after take on a busy machine.
    filled_after = time.monotonic()
    assert eu.get("/v1/runs", headers=headers).status_code == 200  # caches "not pinned"
    filled_before = time.monotonic()
    other = Runtime(settings_for(env))  # another server process, region-less
    try:
        other.residency.set("org-any", "us")
    finally:
        other.close(wait=False)
    stale = eu.get("/v1/runs", headers=headers)
    if time.monotonic() - filled_after < cache.ttl:  # surely inside the cache time
        assert stale.status_code == 200
    time.sleep(max(0.0, cache.ttl + 0.1 - (time.monotonic() - filled_before)))
    problem(eu.get("/v1/runs", headers=headers), 403, "wrong_region")


# -- the check in the core ---------------------------------------------------------------------
def test_region_ids() -> None:
    for good in ("eu", "us", "eu-west-1", "ap-southeast-2", "x", "a" * 32, "r2d2"):
        assert residency.check_region(good) == good
    for bad in HOSTILE_REGIONS:
        with pytest.raises(InvalidInput):
            residency.check_region(bad)
    assert residency.handback_delay(1) == residency.HANDBACK_BASE
    assert residency.handback_delay(2) == 2 * residency.HANDBACK_BASE
    assert residency.handback_delay(10_000) == residency.HANDBACK_MAX


@pytest.mark.parametrize("value", ["EU", "eu_west", "-eu", "a" * 33, "eu/us", "é"])
def test_a_bad_data_region_setting_is_a_config_error(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AGENT_SDK_DATA_REGION"):
        load_settings(env={"HOME": str(tmp_path), "AGENT_SDK_DATA_REGION": value}, cwd=tmp_path)
    blank = load_settings(env={"HOME": str(tmp_path), "AGENT_SDK_DATA_REGION": " "}, cwd=tmp_path)
    assert blank.data_region is None


def test_an_attempt_in_the_wrong_region_leaves_the_run_untouched(env: dict[str, str]) -> None:
    """The worker's guarantee, one level down: an attempt of a run of another region's org
    starts nothing, writes nothing and says so."""
    api = Runtime(settings_for(env, execution_mode="queue"))
    try:
        api.orgs.create("org-us")
        api.residency.set("org-us", "us")
        run = api.runs.create("org-us", NOOP, "x")
    finally:
        api.close(wait=False)
    rt = Runtime(settings_for(env, data_region="eu"))
    try:
        outcome = asyncio.run(rt.executor.attempts.run("org-us", run.id, takeover=True))
        assert outcome.kind == "elsewhere"
        assert "'us'" in (outcome.error or "") and "'eu'" in (outcome.error or "")
        after = rt.store.get_run("org-us", run.id)
        assert (after.status, after.attempts) == (RunStatus.QUEUED, 0)
        assert [e.type for e in rt.store.iter_events("org-us", run.id)] == ["run.created"]
    finally:
        rt.close(wait=False)


# -- workers --------------------------------------------------------------------------------------
class RegionWorker:
    """A worker of one region on its own loop and thread. Its agent `where` answers with the
    worker's region, so a run's output says which region executed it."""

    def __init__(self, settings: Settings) -> None:
        label = settings.data_region or "anywhere"
        model = ScriptedModel([{"text": f"served by {label}"}])
        self.runtime = Runtime(settings, registry=AgentRegistry(agents=[Agent("where", model)]))
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.name = f"worker-{label}"

    def __enter__(self) -> RegionWorker:
        self.thread.start()
        self.runtime.attach(self.loop)
        worker = Worker(self.runtime, self.runtime.queue, name=self.name, poll=0.05)
        self.future = asyncio.run_coroutine_threadsafe(worker.run(self.stop), self.loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.runtime.close(wait=False)


@pytest.fixture(params=["sqlite", "redis"])
def queue_env(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    extra = {"AGENT_SDK_EXECUTION_MODE": "queue"}
    if request.param == "redis":
        extra |= {"AGENT_SDK_QUEUE_BACKEND": "redis",
                  "AGENT_SDK_REDIS_URL": request.getfixturevalue("redis_url")}  # fmt: skip
    return {**env, **extra}


@pytest.mark.slow  # waits on two workers
def test_workers_of_two_regions_on_one_queue_each_run_only_their_own(
    queue_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Short hand-backs, so the test takes seconds; the doubling and the cap are as deployed.
    monkeypatch.setattr(residency, "HANDBACK_BASE", 0.05)
    caplog.set_level(logging.WARNING, logger="agent_sdk.core.worker")
    registry = AgentRegistry(agents=[Agent("where", ScriptedModel([{"text": "api"}]))])
    api = Runtime(settings_for(queue_env), registry=registry)  # a region-less server
    try:
        for org, region in ORGS.items():
            api.orgs.create(org)
            if region is not None:
                api.residency.set(org, region)
        runs = {org: [api.runs.create(org, "where", str(i)).id for i in range(3)] for org in ORGS}

        with RegionWorker(settings_for(queue_env, data_region="eu")) as eu_worker:
            # Alone, the eu worker runs org-eu's and org-any's runs and gives org-us's back.
            for org in ("org-eu", "org-any"):
                for run_id in runs[org]:
                    assert wait_until_done(api, org, run_id).output == "served by eu"
            deadline = time.monotonic() + PATIENCE
            while not set(runs["org-us"]) <= (given_back := handed_back(caplog)):
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.05)
            assert set(runs["org-us"]) <= given_back, caplog.text
            line = next(r.getMessage() for r in caplog.records if "gave back" in r.getMessage())
            assert eu_worker.name in line and "'us'" in line and "ready again in" in line
            for run_id in runs["org-us"]:
                run = api.runs.get("org-us", run_id)
                assert (run.status, run.attempts) == (RunStatus.QUEUED, 0)
                assert [e.type for e in api.runs.events("org-us", run_id)] == ["run.created"]
            deadline = time.monotonic() + PATIENCE  # the finished runs' jobs are being acked
            while api.queue.depth().total > 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            depth = api.queue.depth()
            assert depth.dead == 0 and depth.total == 3  # kept: neither lost nor dead

            with RegionWorker(settings_for(queue_env, data_region="us")):
                for run_id in runs["org-us"]:
                    done = wait_until_done(api, "org-us", run_id)
                    assert (done.output, done.attempts) == ("served by us", 1)
                new_eu = api.runs.create("org-eu", "where", "later").id
                assert wait_until_done(api, "org-eu", new_eu).output == "served by eu"
        deadline = time.monotonic() + PATIENCE
        while api.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.queue.depth().total == 0
    finally:
        api.close(wait=False)


def handed_back(caplog: pytest.LogCaptureFixture) -> set[str]:
    """Ids of the jobs a worker logged as given back (a run's job id is the run id)."""
    marker = "gave back job "
    lines = [r.getMessage() for r in caplog.records]
    return {line.split(marker, 1)[1].split(" ", 1)[0] for line in lines if marker in line}


def wait_until_done(rt: Runtime, org: str, run_id: str, timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = rt.runs.get(org, run_id)
        if run.status.terminal:
            assert run.status is RunStatus.SUCCEEDED, run
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} of {org} is still {rt.runs.get(org, run_id).status}")


def test_recovery_gives_jobs_only_to_runs_of_its_own_region(env: dict[str, str]) -> None:
    queue_mode = {**env, "AGENT_SDK_EXECUTION_MODE": "queue"}
    api = Runtime(settings_for(queue_mode))
    try:
        for org, region in ORGS.items():
            api.orgs.create(org)
            if region is not None:
                api.residency.set(org, region)
        runs = {org: api.runs.create(org, NOOP, "x").id for org in ORGS}
        # The server "died" before enqueueing: empty the queue, the runs stay queued.
        while (lease := api.queue.reserve("gone", lease=60, timeout=0.2)) is not None:
            api.queue.ack(lease)
    finally:
        api.close(wait=False)
    eu = Runtime(settings_for(queue_mode, data_region="eu"))
    try:
        assert recover(eu, eu.queue).requeued == 2  # org-eu and org-any, not org-us
        ids = set()
        while (lease := eu.queue.reserve("w", lease=60, timeout=0.2)) is not None:
            ids.add(lease.job.payload["run_id"])
            eu.queue.ack(lease)
        assert ids == {runs["org-eu"], runs["org-any"]}
    finally:
        eu.close(wait=False)


# -- the CLI --------------------------------------------------------------------------------------
runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(cli_app, list(args))


def cli_json(*args: str) -> Any:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def cli_error(result: Result, exit_code: int) -> dict[str, Any]:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    error: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return error


def test_the_local_cli_obeys_the_region_of_its_process(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SDK_DATA_REGION", "eu")
    error = cli_error(cli("runs", "list", "--local", "--org", "org-us", "-o", "json"), 4)
    assert error["code"] == "wrong_region" and "'us'" in error["message"]
    assert error["details"] == {"org_region": "us", "server_region": "eu"}
    assert cli("runs", "show", world.runs["org-us"], "--local", "--org", "org-us").exit_code == 4
    listed = cli_json("runs", "list", "--local", "--org", "org-eu")
    assert [r["id"] for r in listed] == [world.runs["org-eu"]]
    assert cli_json("runs", "list", "--local", "--org", "org-any")
    shown = cli_json("orgs", "residency", "show", "--local", "--org", "org-us")
    assert shown == {"org_id": "org-us", "region": "us", "server_region": "eu",
                     "served_here": False}  # fmt: skip
    # The database owner moves orgs (locally it holds every scope), from any region.
    moved = cli_json("orgs", "residency", "set", "us", "--local", "--org", "org-any")
    assert (moved["region"], moved["served_here"]) == ("us", False)
    assert cli("runs", "list", "--local", "--org", "org-any").exit_code == 4
    assert cli_json("orgs", "residency", "clear", "--local", "--org", "org-any")["region"] is None
    assert cli_json("runs", "list", "--local", "--org", "org-any")
    for bad in ("EU", "eu_west", "../us", "a" * 33, ""):
        result = cli("orgs", "residency", "set", bad, "--local", "--org", "org-eu", "-o", "json")
        assert cli_error(result, 2)["code"] == "invalid_input"
    assert cli_json("orgs", "residency", "show", "--local", "--org", "org-eu")["region"] == "eu"
    assert cli("orgs", "residency", "show", "--local", "--org", "org-nowhere").exit_code == 1


@pytest.fixture
def eu_server(env: dict[str, str], world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An in-process server of region eu; every HttpBackend the CLI builds talks to it."""
    real = http.HttpBackend
    with TestClient(create_app(settings_for(env, data_region="eu"))) as client:

        def connect(s: Settings, **kw: Any) -> http.HttpBackend:
            return real(s, client=client, **kw)

        monkeypatch.setattr(http, "HttpBackend", connect)
        yield "http://testserver"


def test_the_cli_against_a_server_of_another_region(
    env: dict[str, str], world: World, eu_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = settings_for(env).admin_token_path.read_text().strip()
    monkeypatch.setenv("AGENT_SDK_API_KEY", root)
    remote = ("--server", eu_server)
    error = cli_error(cli("runs", "list", *remote, "--org", "org-us", "-o", "json"), 4)
    assert error["code"] == "wrong_region"
    assert error["details"] == {"org_region": "us", "server_region": "eu"}
    assert "region 'us'" in error["hint"]
    assert [r["id"] for r in cli_json("runs", "list", *remote, "--org", "org-eu")] == [
        world.runs["org-eu"]
    ]
    assert cli_json("orgs", "residency", "show", *remote, "--org", "org-us")["region"] == "us"
    assert cli_json("orgs", "residency", "set", "eu", *remote, "--org", "org-us")["served_here"]
    assert cli_json("runs", "list", *remote, "--org", "org-us")
    assert cli_json("orgs", "residency", "set", "us", *remote, "--org", "org-us")["region"] == "us"
    result = cli("orgs", "residency", "set", "EU", *remote, "--org", "org-eu", "-o", "json")
    assert cli_error(result, 2)["code"] == "invalid_input"
    # An org admin (no admin:platform) reads its org's region but may not move it.
    monkeypatch.setenv("AGENT_SDK_API_KEY", world.tokens["org-eu"])
    assert cli_json("orgs", "residency", "show", *remote)["region"] == "eu"
    for args in (("set", "us"), ("clear",)):
        denied = cli_error(cli("orgs", "residency", *args, *remote, "-o", "json"), 4)
        assert denied["code"] == "permission_denied"
    assert cli_json("orgs", "residency", "show", *remote)["region"] == "eu"
    # ...nor look at another org's, whatever its region.
    other = cli_error(cli("orgs", "residency", "show", *remote, "--org", "org-us", "-o", "json"), 4)
    assert other["code"] == "permission_denied" and "region" not in json.dumps(other)
