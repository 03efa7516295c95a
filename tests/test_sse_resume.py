"""Resuming a run's event stream at or past its end (issue 10, item 4): the answer ends at once
(204, which also tells a browser's EventSource to stop reconnecting) instead of staying open with
keep-alives forever; a resume before the end gets the rest and then ends; a live stream still
ends after its terminal event. Through the HTTP API and the CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.backend import http
from agent_sdk.cli.main import app as cli_app
from agent_sdk.config import Settings, load_settings
from agent_sdk.server.app import create_app
from agent_sdk.server.routes import runs as runs_routes

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
SLOW = {"name": "slow", "model": "scripted", "latency": 0.3,
        "script": [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "done"}]}  # fmt: skip
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of one test, on the store of `engine` (also for the CLI)."""
    return dict(os.environ)


@pytest.fixture(autouse=True)
def quick_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep-alives every 50 ms instead of 15 s: a stream that fails to end shows one at once."""
    quick = functools.partial(runs_routes.with_keepalive, interval=0.05)
    monkeypatch.setattr(runs_routes, "with_keepalive", quick)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env=env, cwd=Path.cwd())


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        c.headers["Authorization"] = "Bearer " + settings.admin_token_path.read_text().strip()
        yield c


def finished_run(client: TestClient, agent: dict[str, Any] = NOOP) -> tuple[str, int]:
    """A run that has ended, and the seq of its terminal event."""
    run = client.post("/v1/runs", json={"agent": agent, "input": "x"}).json()
    return run["id"], wait_ended(client, run["id"])


def wait_ended(client: TestClient, run_id: str) -> int:
    deadline = time.monotonic() + 30
    while client.get(f"/v1/runs/{run_id}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.01)
    events = client.get(f"/v1/runs/{run_id}/events").json()["data"]
    assert events[-1]["type"] in ("run.succeeded", "run.failed", "run.cancelled")
    seq: int = events[-1]["seq"]
    return seq


def read_stream(client: TestClient, path: str, **headers: str) -> tuple[int, list[dict[str, Any]]]:
    """Status and events of an SSE answer read to its end. A stream still open after ten
    seconds of keep-alives (see quick_keepalive) fails the test instead of hanging it."""
    events: list[dict[str, Any]] = []
    quiet = 0
    with client.stream("GET", path, headers={**SSE, **headers}) as answer:
        for line in answer.iter_lines():
            if line.startswith(":"):
                quiet += 1
                assert quiet < 200, f"the stream stayed open (after {events[-1:]})"
            elif line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
        return answer.status_code, events


def test_resuming_at_or_past_the_terminal_event_ends_at_once(client: TestClient) -> None:
    run_id, end = finished_run(client)
    path = f"/v1/runs/{run_id}/events"
    for last in (end, end + 1, end + 1000, 2**63 - 1):
        with client.stream("GET", path, headers={**SSE, "Last-Event-ID": str(last)}) as answer:
            assert answer.status_code == 204, (last, answer.status_code)
            assert answer.read() == b""
    # The same with `after` (and ?stream=true instead of Accept).
    for query in (f"?after={end}&stream=true", f"?after={end + 7}&stream=true"):
        with client.stream("GET", path + query) as answer:
            assert answer.status_code == 204
    # Last-Event-ID wins over `after`, both ways.
    assert read_stream(client, f"{path}?after=0", **{"Last-Event-ID": str(end)})[0] == 204
    status, events = read_stream(client, f"{path}?after={end}", **{"Last-Event-ID": "0"})
    assert status == 200 and [e["seq"] for e in events] == list(range(1, end + 1))


def test_resuming_before_the_end_gets_the_rest_then_ends(client: TestClient) -> None:
    run_id, end = finished_run(client)
    path = f"/v1/runs/{run_id}/events"
    for last in (0, 1, end - 1):
        status, events = read_stream(client, path, **{"Last-Event-ID": str(last)})
        assert status == 200
        assert [e["seq"] for e in events] == list(range(last + 1, end + 1))
        assert events[-1]["type"] == "run.succeeded"


def test_a_live_stream_ends_after_its_terminal_event_and_its_reconnect_gets_204(
    client: TestClient,
) -> None:
    run = client.post("/v1/runs", json={"agent": SLOW, "input": "x"}).json()
    path = f"/v1/runs/{run['id']}/events"
    status, events = read_stream(client, path)
    assert status == 200 and events[-1]["type"] == "run.succeeded"
    # What a browser's EventSource does next: reconnect with the last id it got.
    assert read_stream(client, path, **{"Last-Event-ID": str(events[-1]["seq"])})[0] == 204


def test_a_resume_point_past_the_end_of_a_running_run_ends_with_the_run(
    client: TestClient,
) -> None:
    run = client.post("/v1/runs", json={"agent": SLOW, "input": "x"}).json()
    path = f"/v1/runs/{run['id']}/events"
    status, events = read_stream(client, path, **{"Last-Event-ID": "1000"})
    # It waited for the run (its status is final now) and had nothing to send.
    assert status == 200 and events == []
    assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "succeeded"


def test_a_retried_run_is_not_over_at_its_first_terminal_event(client: TestClient) -> None:
    run = client.post("/v1/runs", json={"agent": SLOW, "input": "x"}).json()
    client.post(f"/v1/runs/{run['id']}/cancel")
    end = wait_ended(client, run["id"])
    assert client.post(f"/v1/runs/{run['id']}/retry").status_code == 202
    status, events = read_stream(
        client, f"/v1/runs/{run['id']}/events", **{"Last-Event-ID": str(end)}
    )
    assert status == 200
    assert events[0]["type"] == "run.retrying" and events[0]["seq"] == end + 1
    assert events[-1]["type"] == "run.succeeded"


def test_hostile_resume_points_are_refused_cleanly(client: TestClient) -> None:
    run_id, end = finished_run(client)
    path = f"/v1/runs/{run_id}/events"
    for bad in ("abc", "-1", "1.5", "+1", "1_0", "0x10", "1e3", str(2**63), "9" * 40, "١"):
        headers: dict[str, str | bytes] = {**SSE, "Last-Event-ID": bad.encode()}
        with client.stream("GET", path, headers=headers) as answer:
            assert answer.status_code == 422, (bad, answer.status_code)
            answer.read()
            body = answer.json()
            assert body["code"] == "invalid_input" and "Last-Event-ID" in body["detail"]
            assert "sqlite" not in answer.text.lower() and "int" not in body["detail"]
    # Another org's run, or none at all, is 404 before any stream starts (also at its end).
    for missing in ("run_nope", run_id + "x"):
        with client.stream("GET", f"/v1/runs/{missing}/events", headers={**SSE,
                           "Last-Event-ID": str(end)}) as answer:  # fmt: skip
            assert answer.status_code == 404


# -- the CLI ---------------------------------------------------------------------------------------
runner = CliRunner()


def cli(*args: str, deadline: float = 30) -> Result:
    """The CLI, with a deadline: a follow that never returns fails instead of hanging."""
    results: list[Result] = []
    worker = threading.Thread(
        target=lambda: results.append(runner.invoke(cli_app, list(args))), daemon=True
    )
    worker.start()
    worker.join(deadline)
    assert results, f"agent-sdk {' '.join(args)} did not return within {deadline} s"
    return results[0]


@pytest.fixture(params=["local", "http"])
def via(
    request: pytest.FixtureRequest,
    settings: Settings,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Options that make the CLI use the local backend or the in-process server."""
    if request.param == "local":
        return ["--local"]
    real = http.HttpBackend
    monkeypatch.setattr(http, "HttpBackend", lambda s, **kw: real(s, client=client, **kw))
    monkeypatch.setenv("AGENT_SDK_API_KEY", settings.admin_token_path.read_text().strip())
    return ["--server", "http://testserver"]


def test_the_cli_follow_of_a_finished_run_returns(client: TestClient, via: list[str]) -> None:
    run_id, end = finished_run(client)
    for after in (end, end + 5):
        result = cli("runs", "events", run_id, "--follow", "--after", str(after), "-o", "json",
                     *via)  # fmt: skip
        assert result.exit_code == 0, (result.stdout, result.stderr)
        assert result.stdout == ""
        assert f"no events after {after}" in result.stderr
    result = cli("runs", "events", run_id, "--follow", "--after", str(end - 2), "-o", "json", *via)
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == [end - 1, end]
    # A run that failed still says so when there is nothing left to show.
    failed_id, failed_end = finished_run(
        client, {"name": "boom", "model": "scripted", "script": [{"error": "boom"}]}
    )
    result = cli("runs", "events", failed_id, "--follow", "--after", str(failed_end), *via)
    assert result.exit_code != 0 and "failed" in result.stderr
    # Hostile --after values stop at the CLI's own check.
    assert cli("runs", "events", run_id, "--follow", "--after", "-1", *via).exit_code == 2
