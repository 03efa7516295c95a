"""The standard-library wire of the HTTP backend (agent_sdk/backend/_wire.py) against a canned
server on a TCP port: answers become the errors of the tree as over httpx, a server that goes
silent or hangs up is BackendUnavailable, and the CLI's remote call needs no httpx at all."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_sdk.backend import _wire
from agent_sdk.backend.http import HttpBackend
from agent_sdk.config import Settings
from agent_sdk.errors import AgentSDKError, BackendUnavailable, NotFound, QuotaExceeded


class Canned:
    """Answers every request on 127.0.0.1 with ``answer`` (raw bytes; None: say nothing until
    the client hangs up) and keeps the request lines it saw."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.answer: bytes | None = b""
        self._tls = tls
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except OSError:
                    conn.close()  # a client that refused our certificate
                    continue
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head)
                if self.answer is None:
                    conn.recv(1)  # until the client gives up
                    continue
                conn.sendall(self.answer)

    def close(self) -> None:
        self._sock.close()


def answer(status: str, body: bytes, content_type: str = "application/json", **extra: str) -> bytes:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **extra}
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{lines}Connection: close\r\n\r\n".encode() + body


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.close()


def backend(settings: Settings, url: str) -> HttpBackend:
    return HttpBackend(settings.replace(server_url=url, org_id="acme"), api_key="tok")


def test_a_page_of_runs_and_the_request_that_asked(settings: Settings, canned: Canned) -> None:
    canned.answer = answer("200 OK", b'{"data": [], "next_cursor": "c2"}')
    b = backend(settings, canned.url + "/")
    page = b.list_runs(limit=3, status=["queued", "running"])
    assert page.items == [] and page.next_cursor == "c2"
    (request,) = canned.requests
    line, *headers = request.decode().split("\r\n")
    assert line == "GET /v1/runs?limit=3&status=queued%2Crunning HTTP/1.1"
    assert "Authorization: Bearer tok" in headers and "X-Org-Id: acme" in headers
    assert any(h.startswith("User-Agent: agent-sdk/") for h in headers)


@pytest.mark.parametrize(
    ("reply", "expected", "hint"),
    [
        (
            answer("429 Too Many Requests", b'{"code": "quota_exceeded", "detail": "slow"}',
                   "application/problem+json", **{"Retry-After": "3"}),
            QuotaExceeded,
            "retry after 3 s",
        ),
        (answer("404 Not Found", b'{"code": "not_found", "detail": "no"}'), NotFound, None),
        (answer("502 Bad Gateway", b"<html>bad gateway</html>", "text/html"), BackendUnavailable,
         None),
        (answer("200 OK", b"<html>a proxy page</html>", "text/html"), BackendUnavailable,
         "check that AGENT_SDK_SERVER_URL points at an agent-sdk server"),
    ],
)  # fmt: skip
def test_answers_become_errors_of_the_tree(
    settings: Settings,
    canned: Canned,
    reply: bytes,
    expected: type[AgentSDKError],
    hint: str | None,
) -> None:
    canned.answer = reply
    with pytest.raises(AgentSDKError) as info:
        backend(settings, canned.url).get_run("run_x")
    assert type(info.value) is expected
    assert info.value.hint == hint


def test_a_server_that_hangs_up_or_says_nothing_is_unavailable(
    settings: Settings, canned: Canned, monkeypatch: pytest.MonkeyPatch
) -> None:
    canned.answer = b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"data"'  # cut short
    with pytest.raises(BackendUnavailable) as info:
        backend(settings, canned.url).list_runs()
    assert str(info.value) == f"cannot reach the agent-sdk server at {canned.url}"
    canned.answer = None
    monkeypatch.setattr(_wire, "TIMEOUT", 0.3)
    with pytest.raises(BackendUnavailable) as info:
        backend(settings, canned.url).list_runs()
    assert str(info.value).endswith("(no answer in time)")


def test_a_proxy_in_the_environment_goes_through_httpx(
    settings: Settings, canned: Canned, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(backend(settings, canned.url)._wire, _wire.PlainWire)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert isinstance(backend(settings, canned.url)._wire, _wire.HttpxWire)


def test_a_remote_list_from_the_cli_needs_no_httpx(canned: Canned, tmp_path: Path) -> None:
    canned.answer = answer("200 OK", b'{"data": [], "next_cursor": null}')
    code = (
        "import sys\n"
        f"sys.argv = ['agent-sdk', 'runs', 'list', '-o', 'json', '--server', {canned.url!r}]\n"
        "from agent_sdk.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['httpx', 'httpcore', 'fastapi', 'agent_sdk.core', 'agent_sdk.store',\n"
        "         'agent_sdk.audit_anchor', 'agent_sdk.records.audit']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SDK_")}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
        XDG_DATA_HOME=str(tmp_path / ".local" / "share"),
        AGENT_SDK_API_KEY="asdk_test",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    listed, loaded = result.stdout.strip().rsplit("\n", 1)
    assert json.loads(listed) == [], result.stderr
    assert loaded == "LOADED="


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_trusts_the_ca_the_environment_names(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    canned = Canned(tls)
    canned.answer = answer("200 OK", b'{"data": [], "next_cursor": null}')
    url = canned.url.replace("http://", "https://")
    try:
        with pytest.raises(BackendUnavailable):  # not a CA of the bundle: refused
            backend(settings, url).list_runs()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert backend(settings, url).list_runs().items == []
    finally:
        canned.close()
