"""http.fetch against a tiny HTTP server on 127.0.0.1 (loopback only, nothing else is contacted).

Hosts that must be refused are spelled ``localhost``: even a bug that let the request out would
only reach this machine.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent_sdk.engine.builtin_tools import BUILTIN_TOOLS, MAX_REDIRECTS
from agent_sdk.engine.tools import ToolContext
from agent_sdk.errors import ToolError


class Handler(BaseHTTPRequestHandler):
    hits: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        self.server.hits.append(f"{self.command} {url.path}")  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(url.query)
        if url.path == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain; charset=utf-8", "X-Test": "1"})
        elif url.path == "/big":
            self._send(200, b"a" * 100_000)
        elif url.path == "/redirect":
            status = int(query.get("status", ["302"])[0])
            self._send(status, headers={"Location": query["to"][0]})
        elif url.path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif url.path == "/echo":
            auth = self.headers.get("Authorization", "")
            self._send(200, f"{self.command}|{body.decode()}|{auth}".encode())
        elif url.path == "/slow":
            time.sleep(1)
            self._send(200, b"late")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_HEAD = _handle


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[str]]]:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], httpd.hits  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def fetch(allow: list[str], timeout: float = 5.0, **arguments: Any) -> Any:
    ctx = ToolContext(run_id="r", http_allowlist=tuple(allow), http_timeout=timeout)
    return asyncio.run(BUILTIN_TOOLS["http.fetch"].call(ctx, arguments))


def refused(allow: list[str], **arguments: Any) -> str:
    with pytest.raises(ToolError) as info:
        fetch(allow, **arguments)
    return info.value.message


def test_fetch_an_allowed_host(server: tuple[int, list[str]]) -> None:
    port, hits = server
    out = fetch([f"127.0.0.1:{port}"], url=f"http://127.0.0.1:{port}/ok")
    assert out["status"] == 200 and out["body"] == "hello" and out["truncated"] is False
    assert out["headers"]["x-test"] == "1"
    assert hits == ["GET /ok"]
    # A bare host allows every port.
    assert fetch(["127.0.0.1"], url=f"http://127.0.0.1:{port}/ok")["body"] == "hello"


def test_a_host_not_on_the_allowlist_is_never_contacted(server: tuple[int, list[str]]) -> None:
    port, hits = server
    message = refused([f"127.0.0.1:{port}"], url=f"http://localhost:{port}/ok")
    assert "'localhost' is not in the allowed hosts (AGENT_SDK_HTTP_ALLOWLIST)" in message
    assert "is not in the allowed hosts" in refused([], url=f"http://127.0.0.1:{port}/ok")
    assert "is not in the allowed hosts" in refused(
        [f"127.0.0.1:{port + 1}"], url=f"http://127.0.0.1:{port}/ok"
    )
    assert hits == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "http:///nohost"]
)
def test_only_http_and_https_urls(url: str) -> None:
    assert "allowed" in refused(["127.0.0.1"], url=url) or "host" in refused(["127.0.0.1"], url=url)


def test_an_allowed_redirect_is_followed(server: tuple[int, list[str]]) -> None:
    port, hits = server
    out = fetch(["127.0.0.1"], url=f"http://127.0.0.1:{port}/redirect?to=/ok")
    assert out["body"] == "hello" and out["url"] == f"http://127.0.0.1:{port}/ok"
    assert hits == ["GET /redirect", "GET /ok"]


def test_a_redirect_to_a_host_not_allowed_is_refused(server: tuple[int, list[str]]) -> None:
    port, hits = server
    target = f"http://localhost:{port}/ok"
    message = refused(["127.0.0.1"], url=f"http://127.0.0.1:{port}/redirect?to={target}")
    assert "'localhost' is not in the allowed hosts" in message
    assert hits == ["GET /redirect"]  # the hop was checked before it was made


def test_a_redirect_to_another_scheme_is_refused(server: tuple[int, list[str]]) -> None:
    port, hits = server
    message = refused(["127.0.0.1"], url=f"http://127.0.0.1:{port}/redirect?to=file:///etc/passwd")
    assert "only http and https" in message


def test_redirects_are_capped(server: tuple[int, list[str]]) -> None:
    port, hits = server
    assert "too many redirects" in refused(["127.0.0.1"], url=f"http://127.0.0.1:{port}/loop")
    assert len(hits) == MAX_REDIRECTS + 1


def test_303_turns_a_post_into_a_get_without_body(server: tuple[int, list[str]]) -> None:
    port, hits = server
    out = fetch(
        ["127.0.0.1"],
        url=f"http://127.0.0.1:{port}/redirect?status=303&to=/echo",
        method="post",
        body="payload",
    )
    assert out["body"] == "GET||"
    assert fetch(["127.0.0.1"], url=f"http://127.0.0.1:{port}/echo", method="POST", body="b")[
        "body"
    ] == ("POST|b|")


def test_credentials_are_dropped_on_a_cross_origin_redirect(server: tuple[int, list[str]]) -> None:
    port, _ = server
    headers = {"Authorization": "Bearer s3cret"}
    same = fetch(["127.0.0.1"], url=f"http://127.0.0.1:{port}/echo", headers=headers)
    assert same["body"] == "GET||Bearer s3cret"
    target = f"http://localhost:{port}/echo"
    out = fetch(
        ["127.0.0.1", "localhost"],
        url=f"http://127.0.0.1:{port}/redirect?status=307&to={target}",
        headers=headers,
    )
    assert out["body"] == "GET||"


def test_the_body_is_capped_at_max_bytes(server: tuple[int, list[str]]) -> None:
    port, _ = server
    out = fetch(["127.0.0.1"], url=f"http://127.0.0.1:{port}/big", max_bytes=10)
    assert out["body"] == "a" * 10 and out["truncated"] is True


def test_network_errors_and_timeouts_are_tool_errors(server: tuple[int, list[str]]) -> None:
    port, _ = server
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert "failed" in refused(["127.0.0.1"], url=f"http://127.0.0.1:{closed}/")
    with pytest.raises(ToolError, match="timed out"):
        fetch(["127.0.0.1"], timeout=0.2, url=f"http://127.0.0.1:{port}/slow")


def test_bad_arguments(server: tuple[int, list[str]]) -> None:
    port, hits = server
    url = f"http://127.0.0.1:{port}/ok"
    assert "Host header" in refused(["127.0.0.1"], url=url, headers={"Host": "other"})
    assert "method: must be one of" in refused(["127.0.0.1"], url=url, method="TRACE")
    assert "url: required" in refused(["127.0.0.1"])
    assert hits == []
