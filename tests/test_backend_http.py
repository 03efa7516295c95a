"""The Backend contract on the HTTP backend: in-process over Starlette's TestClient, and against a
real server process on a TCP port. Plus what only the HTTP backend does: reach-ability errors,
problem answers turned back into the error tree, and resuming a dropped event stream."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from contracts.backend_contract import BackendContract

from agent_sdk.backend.http import HttpBackend
from agent_sdk.config import Settings, load_settings
from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    ModelError,
    NotFound,
    QuotaExceeded,
)
from agent_sdk.records import Event
from agent_sdk.server.app import create_app
from agent_sdk.store import open_store

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 but works with httpx, which is what agent-sdk depends on.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient


def admin_token(settings: Settings) -> str:
    return settings.admin_token_path.read_text().strip()


_orgs = itertools.count(1)


@pytest.fixture(scope="module")
def in_process_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("in-process") / "home"
    home.mkdir()
    settings = load_settings(env={"HOME": str(home), "NO_COLOR": "1"}, cwd=home)
    # What the contract's own `settings` fixture asks of every backend it tests.
    return settings.replace(audit_hash_chain=True)


@pytest.fixture(scope="module")
def in_process_client(in_process_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(in_process_settings)) as client:
        yield client


class TestHttpBackendInProcess(BackendContract):
    """One in-process server for the module (an app and a migrated store per test were most of
    this class's time); each test gets an org of its own, so it starts empty, as over TCP."""

    @pytest.fixture
    def backend(
        self, in_process_settings: Settings, in_process_client: TestClient
    ) -> Iterator[HttpBackend]:
        server_settings, client = in_process_settings, in_process_client
        org = f"p{next(_orgs)}"
        store = open_store(server_settings.store.database_url)
        try:
            store.ensure_org(org)
        finally:
            store.close()
        settings = server_settings.replace(org_id=org)
        backend = HttpBackend(settings, api_key=admin_token(server_settings), client=client)
        yield backend
        backend.close()

    @pytest.fixture
    def backend_in_org(
        self, in_process_settings: Settings, in_process_client: TestClient
    ) -> Callable[[str], HttpBackend]:
        server_settings, client = in_process_settings, in_process_client

        def make(org_id: str) -> HttpBackend:
            return HttpBackend(
                server_settings.replace(org_id=org_id),
                api_key=admin_token(server_settings),
                client=client,
            )

        return make


# -- a real server process ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE = (
    "import sys, uvicorn\n"
    "from agent_sdk.config import load_settings\n"
    "from agent_sdk.server.app import create_app\n"
    "from agent_sdk.server.listener import server_config\n"
    "settings = load_settings()\n"
    "uvicorn.Server(server_config(create_app(settings), settings, host='127.0.0.1',\n"
    "                             port=int(sys.argv[1]), ws='none')).run()\n"
)


class Server:
    """A server subprocess on 127.0.0.1 with its own HOME and data directory."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SDK_")}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            NO_COLOR="1",
        )
        home.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.settings = load_settings(env=env, cwd=home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.port)],
                env=self.env,
                cwd=self.env["HOME"],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def token(self) -> str:
        return admin_token(self.settings)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server") / "home")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    log = srv.log.read_text()
    assert "Traceback" not in log, log
    assert "created the bootstrap API key" in log


@pytest.mark.slow
class TestHttpBackendOverTCP(BackendContract):
    """One server for the module; each test gets an org of its own, so it starts empty."""

    @pytest.fixture
    def backend(self, server: Server) -> Iterator[HttpBackend]:
        org = f"t{next(_orgs)}"
        store = open_store(server.settings.store.database_url)
        try:
            store.ensure_org(org)
        finally:
            store.close()
        settings = server.settings.replace(server_url=server.url, org_id=org)
        backend = HttpBackend(settings, api_key=server.token)
        yield backend
        backend.close()

    @pytest.fixture
    def backend_in_org(self, server: Server) -> Iterator[Callable[[str], HttpBackend]]:
        made: list[HttpBackend] = []

        def make(org_id: str) -> HttpBackend:
            settings = server.settings.replace(server_url=server.url, org_id=org_id)
            made.append(HttpBackend(settings, api_key=server.token))
            return made[-1]

        yield make
        for backend in made:
            backend.close()


@pytest.mark.slow
def test_a_live_stream_over_tcp_delivers_events_as_they_happen(server: Server) -> None:
    settings = server.settings.replace(server_url=server.url)
    backend = HttpBackend(settings, api_key=server.token)
    try:
        script = [{"tool": "fs.list", "arguments": {"path": "."}}, {"text": "ok"}]
        spec = {"name": "paced", "model": "scripted", "latency": 0.3, "script": script}
        run = backend.create_run(spec, "go")
        arrivals: list[tuple[float, Event]] = []
        for event in backend.follow_events(run.id):
            arrivals.append((time.monotonic(), event))
        assert arrivals[-1][1].type == "run.succeeded"
        started = next(t for t, e in arrivals if e.type == "run.started")
        # Two model turns of 0.3 s each lie between run.started and the end: had the stream been
        # buffered, everything would have arrived at once.
        assert arrivals[-1][0] - started > 0.4
    finally:
        backend.close()


# -- the HTTP backend's own behaviour -------------------------------------------------------------
def test_an_unreachable_server_is_backend_unavailable(settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = HttpBackend(settings.replace(server_url=url), api_key="x")
    try:
        with pytest.raises(BackendUnavailable) as info:
            backend.list_runs()
        assert url in str(info.value)
        assert "agent-sdk up" in (info.value.hint or "")
    finally:
        backend.close()


def test_a_server_url_without_scheme_is_a_config_error(settings: Settings) -> None:
    backend = HttpBackend(settings.replace(server_url="localhost:8765"), api_key="x")
    try:
        with pytest.raises(ConfigError):
            backend.get_run("run_x")
    finally:
        backend.close()


def test_db_commands_are_refused(settings: Settings) -> None:
    backend = HttpBackend(settings, api_key="x")
    try:
        for call in (backend.migrate, backend.migration_status):
            with pytest.raises(InvalidInput) as info:
                call()
            assert "--local" in (info.value.hint or "")
    finally:
        backend.close()


def test_a_wrong_token_is_an_authentication_error(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        backend = HttpBackend(settings, api_key="asdk_admin_wrong", client=client)
        with pytest.raises(AuthenticationError) as info:
            backend.list_runs()
        assert "AGENT_SDK_API_KEY" in (info.value.hint or "")


def test_requests_carry_identity_headers(settings: Settings) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    org = settings.replace(org_id="acme")
    backend = HttpBackend(org, api_key="tok", transport=httpx.MockTransport(handler))
    try:
        backend.list_sessions(limit=3)
    finally:
        backend.close()
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["X-Org-Id"] == "acme"
    assert request.headers["User-Agent"].startswith("agent-sdk/")
    assert request.url.path == "/v1/sessions" and request.url.params["limit"] == "3"


def problem(status: int, **body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (problem(404, code="not_found", detail="run 'x' not found"), NotFound),
        (problem(422, code="invalid_input", detail="bad"), InvalidInput),
        (problem(429, code="quota_exceeded", detail="slow down"), QuotaExceeded),
        (problem(502, code="model_error", detail="boom", retryable=True), ModelError),
        (problem(418, code="some_future_code", detail="?"), AgentSDKError),
        (problem(413, code="payload_too_large", detail="too big"), InvalidInput),
        (httpx.Response(502, text="<html>bad gateway</html>"), BackendUnavailable),
        (httpx.Response(500, text="oops"), AgentSDKError),
    ],
)
def test_answers_become_errors_of_the_tree(
    settings: Settings, answer: httpx.Response, expected: type[AgentSDKError]
) -> None:
    backend = HttpBackend(settings, transport=httpx.MockTransport(lambda _r: answer))
    try:
        with pytest.raises(AgentSDKError) as info:
            backend.get_run("run_x")
    finally:
        backend.close()
    assert type(info.value) is expected
    if isinstance(info.value, ModelError):
        assert info.value.retryable and info.value.message == "boom"


def sse(*events: Event, tail: bytes = b"") -> bytes:
    from agent_sdk.server.routes.runs import encode_sse

    return encode_sse(events) + tail


def test_a_dropped_stream_resumes_after_the_last_event(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    events = [Event("run_x", i, "tool.call", "t", {"i": i}) for i in range(1, 6)]
    events.append(Event("run_x", 6, "run.succeeded", "t"))
    resumed_from: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = int(request.headers["Last-Event-ID"])
        resumed_from.append(str(after))
        if after == 0:  # the first connection drops after three events, mid-frame
            body = sse(*events[:3], tail=b'id: 4\nevent: tool.call\ndata: {"run_')
            return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})
        if after == 3 and resumed_from.count("3") == 1:
            return problem(503, code="backend_unavailable", detail="restarting")
        body = sse(*events[after:]) + b": keepalive\n\n"
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    backend = HttpBackend(settings, transport=httpx.MockTransport(handler))
    try:
        got = list(backend.follow_events("run_x"))
    finally:
        backend.close()
    assert got == events
    assert resumed_from == ["0", "3", "3"]


def test_a_stream_that_keeps_failing_gives_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    backend = HttpBackend(settings, transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(BackendUnavailable):
            list(backend.follow_events("run_x"))
    finally:
        backend.close()
    assert 2 < len(calls) < 10


def test_sse_lines_split_only_at_cr_and_lf() -> None:
    from agent_sdk.backend._sse import sse_lines as _sse_lines

    chunks = ["a\r", "\nb\rc\n", "d\u2028e\x1cf\n", "\n", "tail"]
    assert list(_sse_lines(iter(chunks))) == ["a", "b", "c", "d\u2028e\x1cf", "", "tail"]
