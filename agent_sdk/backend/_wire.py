"""How :class:`~agent_sdk.backend._http_client.HttpClient` moves bytes: one request, or one
streamed answer, to a server. A failure to get an answer is :class:`TransportFailure` (a
:class:`BackendUnavailable`); a URL that cannot be used is a :class:`ConfigError`.

Two wires with one interface. :class:`PlainWire`, over the standard library's ``http.client``,
is what the CLI uses: importing httpx and building its client (whose TLS context loads the CA
bundle even for a plain-HTTP URL) cost a CLI call several times what the call itself did. Its
TLS context is made only for an ``https`` URL, once. :class:`HttpxWire` wraps an httpx client:
one given by the caller (Starlette's TestClient, a mock transport), and the CLI's own whenever
the environment names a proxy or the URL holds a user name, which httpx handles and this module
does not try to.

The plain wire opens a connection per request (a CLI call makes one or two, so keeping it
alive would buy nothing), asks for no compression, follows no redirects (as httpx by default),
and times out as ``httpx.Timeout(30, connect=5)`` does.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from agent_sdk.errors import BackendUnavailable, ConfigError
from agent_sdk.masking import mask_url, scrub, url_secrets

if TYPE_CHECKING:
    import http.client
    import ssl

    import httpx

T = TypeVar("T")

TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
_CHUNK = 64 * 1024


class TransportFailure(BackendUnavailable):
    """No answer from the server: refused, reset, timed out, not a valid HTTP answer."""


class Headers(Protocol):
    """Header lookup, by any case of the name (httpx.Headers, http.client's HTTPMessage)."""

    def get(self, name: str, default: Any = None, /) -> Any: ...
    def __getitem__(self, name: str, /) -> Any: ...


class Response(Protocol):
    """The part of an answer the client reads (httpx.Response has it too)."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> Headers: ...
    def json(self) -> Any: ...
    def read(self) -> bytes: ...
    def iter_text(self) -> Iterator[str]: ...


class Wire(Protocol):
    base_url: str  # for messages; a password in it is masked

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> Response: ...

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
    ) -> AbstractContextManager[Response]:
        """The answer, its body read as it arrives; the connection closes on exit."""
        ...

    def close(self) -> None: ...


def bad_url(url: str, why: object) -> ConfigError:
    shown = scrub(str(why), url_secrets(url))  # a library's message may quote the URL
    return ConfigError(
        f"AGENT_SDK_SERVER_URL={mask_url(url)!r} is not a usable URL ({shown})",
        hint="use http://host:port or https://host",
    )


def unreachable(base_url: str, *, timed_out: bool) -> TransportFailure:
    why = " (no answer in time)" if timed_out else ""
    return TransportFailure(
        f"cannot reach the agent-sdk server at {base_url}{why}",
        hint="start it with `agent-sdk up`, or use --local",
    )


def open_wire(url: str, transport: httpx.BaseTransport | None = None) -> Wire:
    """The wire to ``url``: plain, unless httpx is needed (a transport given, a proxy in the
    environment, a user name in the URL)."""
    if transport is None and not _wants_httpx(url):
        return PlainWire(url)
    import httpx

    try:
        client = httpx.Client(
            base_url=url,
            transport=transport,
            timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT),
        )
    except httpx.InvalidURL as exc:  # "http://[::1", a port out of range
        raise bad_url(url, exc) from None
    return HttpxWire(client, url, owned=True)


def _wants_httpx(url: str) -> bool:
    from agent_sdk.config import proxy_in_env

    if proxy_in_env():
        return True
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False  # PlainWire says what is wrong with it


# -- the standard library's wire ------------------------------------------------------------------


class PlainResponse:
    def __init__(self, raw: http.client.HTTPResponse, base_url: str) -> None:
        self._raw = raw
        self._base_url = base_url
        self.status_code = raw.status
        # The standard phrase of the status, as httpx gives it (not the server's wording).
        self.reason_phrase = _phrase(raw.status)
        self.headers: Headers = raw.headers
        self._body: bytes | None = None

    def read(self) -> bytes:
        if self._body is None:
            self._body = _guarded(self._raw.read, self._base_url)
        return self._body

    def json(self) -> Any:
        return json.loads(self.read())

    def iter_text(self) -> Iterator[str]:
        """The body decoded as UTF-8, in pieces as they arrive (a live event stream)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := _guarded(lambda: self._raw.read1(_CHUNK), self._base_url):
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


class PlainWire:
    def __init__(self, url: str) -> None:
        self._url = url
        try:
            parts = urlsplit(url)
            self._port = parts.port
        except ValueError as exc:  # "http://[::1", a port out of range
            raise bad_url(url, exc) from None
        self.base_url = mask_url(parts._replace(scheme=parts.scheme.lower()).geturl().rstrip("/"))
        self._scheme = parts.scheme.lower()
        self._host = parts.hostname or ""
        self._prefix = parts.path.rstrip("/")
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        pass  # each request closes its own connection

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> PlainResponse:
        conn = self._connect(timeout or CONNECT_TIMEOUT, timeout or TIMEOUT)
        try:
            resp = self._send(conn, method, path, params, content, headers)
            resp.read()
            return resp
        finally:
            conn.close()

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
    ) -> Iterator[PlainResponse]:
        conn = self._connect(CONNECT_TIMEOUT, read_timeout or TIMEOUT)
        try:
            yield self._send(conn, method, path, params, None, headers)
        finally:
            conn.close()

    def _connect(self, connect_timeout: float, timeout: float) -> http.client.HTTPConnection:
        import http.client

        if self._scheme not in ("http", "https"):
            shown = f"{self._scheme}://" if self._scheme else "no http:// or https://"
            raise bad_url(self._url, f"unsupported protocol {shown}")
        if not self._host:
            raise unreachable(self.base_url, timed_out=False)  # as httpx: nothing to connect to
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=connect_timeout, context=self._tls_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        _guarded(conn.connect, self.base_url)
        if conn.sock is not None:
            conn.sock.settimeout(timeout)  # reads and writes, once connected
        return conn

    def _send(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> PlainResponse:
        target = self._prefix + path
        if params:
            target += "?" + urlencode(params, quote_via=quote)

        def send() -> http.client.HTTPResponse:
            conn.request(method, target, body=content, headers=dict(headers))
            return conn.getresponse()

        return PlainResponse(_guarded(send, self.base_url), self.base_url)

    def _tls_context(self) -> ssl.SSLContext:
        """The CA bundle httpx would use: SSL_CERT_FILE or SSL_CERT_DIR if set, else certifi's."""
        if self._tls is None:
            import ssl

            from agent_sdk.config import tls_trust_in_env

            cafile, capath = tls_trust_in_env()
            if cafile is None and capath is None:
                import certifi

                cafile = certifi.where()
            elif cafile is not None:
                capath = None  # as httpx: the file wins over the directory
            self._tls = ssl.create_default_context(cafile=cafile, capath=capath)
        return self._tls


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _guarded(call: Callable[[], T], base_url: str) -> T:
    """``call()``, its failure to talk to the server as :class:`TransportFailure`."""
    import http.client

    try:
        return call()
    except TimeoutError:
        raise unreachable(base_url, timed_out=True) from None
    except (OSError, http.client.HTTPException):
        raise unreachable(base_url, timed_out=False) from None


# -- an httpx client as a wire ------------------------------------------------------------------


class HttpxWire:
    """A given httpx client (used as is and left open) or the CLI's own (``owned``)."""

    def __init__(self, client: httpx.Client, url: str, *, owned: bool) -> None:
        self._client = client
        self._url = url
        self._owned = owned
        self.base_url = mask_url(str(client.base_url).rstrip("/"))

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> Response:
        # A given client keeps its own timeouts (Starlette's TestClient refuses per-request ones).
        extra: dict[str, Any] = {"timeout": timeout} if timeout and self._owned else {}
        with self._translated():
            resp = self._client.request(
                method, path, params=params, content=content, headers=headers, **extra
            )
        return resp

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
    ) -> Iterator[Response]:
        import httpx

        extra: dict[str, Any] = {}
        if read_timeout and self._owned:
            extra["timeout"] = httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT, read=read_timeout)
        with self._translated():
            with self._client.stream(method, path, params=params, headers=headers, **extra) as resp:
                yield _HttpxStreamed(resp, self)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        import httpx

        try:
            yield
        except httpx.UnsupportedProtocol as exc:
            raise bad_url(self._url, exc) from None
        except httpx.TransportError as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            raise unreachable(self.base_url, timed_out=timed_out) from None
        except httpx.InvalidURL as exc:
            raise bad_url(self._url, exc) from None


class _HttpxStreamed:
    """A streamed httpx answer whose reads fail as :class:`TransportFailure`."""

    def __init__(self, resp: httpx.Response, wire: HttpxWire) -> None:
        self._resp = resp
        self._wire = wire
        self.status_code = resp.status_code
        self.reason_phrase = resp.reason_phrase
        self.headers: Headers = resp.headers

    def read(self) -> bytes:
        with self._wire._translated():
            body = self._resp.read()
        return body

    def json(self) -> Any:
        return self._resp.json()

    def iter_text(self) -> Iterator[str]:
        with self._wire._translated():
            yield from self._resp.iter_text()
