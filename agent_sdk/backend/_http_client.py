"""The HTTP plumbing of :class:`~agent_sdk.backend.http.HttpBackend`: a wire to the server, the
headers every call sends, JSON calls and streamed lines, and the translation of driver errors at
this boundary. A problem answer becomes the exception of :mod:`agent_sdk.errors` named by its
``code``; a server that cannot be reached becomes :class:`BackendUnavailable`; a URL that cannot
be used becomes :class:`ConfigError`.

The bytes travel over a wire (:mod:`agent_sdk.backend._wire`): the standard library's
``http.client`` for the CLI's own calls, httpx only when the caller hands in an httpx client or
transport or the environment needs it (a proxy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent_sdk._version import __version__
from agent_sdk.backend._wire import HttpxWire, Response, TransportFailure, open_wire
from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    ModelError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    WrongRegion,
    error_from_code,
)

if TYPE_CHECKING:
    import httpx

    from agent_sdk.config import Settings

# ensure_ascii (the default): every character is escaped, a lone surrogate too.
_ascii_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

# A gateway's answers while a server restarts: a stream that gets one is resumed, not ended.
RETRY_STATUSES = frozenset({502, 503, 504})
# Answers that are not problems of ours (a proxy's error page, an old server) map by status.
_BY_STATUS: dict[int, type[AgentSDKError]] = {
    400: InvalidInput,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: InvalidInput,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
    429: QuotaExceeded,
    431: InvalidInput,
    502: BackendUnavailable,
    503: BackendUnavailable,
    504: BackendUnavailable,
}


class HttpClient:
    """A connection to one server as one credential and org; the operations are in the
    subclass."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        """Talk to ``settings.client.server_url`` as ``settings.client.org_id``. ``client`` (an
        httpx.Client such as Starlette's TestClient, with its own base URL) is used as is and left
        open; otherwise the backend opens a wire of its own (see :mod:`._wire`), over httpx and
        ``transport`` when one is given. Without an org in the settings no ``X-Org-Id`` is sent
        and the server acts in the credential's own org."""
        self.settings = settings
        self.org_id = settings.client.org_id
        self._headers = {
            "User-Agent": f"agent-sdk/{__version__}",
            "Accept": "application/json",
        }
        if settings.client.org_id is not None:
            self._headers["X-Org-Id"] = settings.client.org_id
        token = api_key or settings.client.api_key
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        url = settings.client.server_url
        self._wire = (
            open_wire(url, transport) if client is None else HttpxWire(client, url, owned=False)
        )
        # As messages show it: a URL given with user:password@ must not echo the password.
        self.base_url = self._wire.base_url

    def close(self) -> None:
        self._wire.close()

    def reachable(self) -> bool:
        """Whether anything answers HTTP at the server URL (any status will do: the question
        is whether a server is there, not whether it accepts us). A URL that cannot be used
        at all is a ConfigError, as on every other call."""
        try:
            self._wire.request("GET", "/health", headers=self._headers)
        except TransportFailure:
            return False
        return True

    # -- calls --------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        all_headers = {**self._headers, **headers} if headers else dict(self._headers)
        content = None
        if json is not None:
            # ASCII JSON, as UTF-8 cannot encode a lone surrogate (an argument that is not
            # UTF-8): escaped, it reaches the server, which refuses it naming the field, as the
            # local backend does.
            content = _ascii_json(json).encode("ascii")
            all_headers["Content-Type"] = "application/json"
        resp = self._wire.request(
            method, path, params=params, content=content, headers=all_headers, timeout=timeout
        )
        if resp.status_code >= 400:
            raise error_from(resp)
        try:
            return resp.json()
        except ValueError:
            raise BackendUnavailable(
                f"the server at {self.base_url} answered {method} {path} with something that "
                "is not JSON",
                hint="check that AGENT_SDK_SERVER_URL points at an agent-sdk server",
            ) from None

    def _stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """The lines of a streamed answer (each ending in "\\n"), read as they arrive: an
        export of any size passes through in constant memory."""
        headers = {**self._headers, "Accept": "*/*"}
        with self._wire.stream("GET", path, params=params, headers=headers) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise error_from(resp)
            buffer = ""
            for chunk in resp.iter_text():
                buffer += chunk
                start = 0
                while (end := buffer.find("\n", start) + 1) > 0:
                    yield buffer[start:end]
                    start = end
                buffer = buffer[start:]
            if buffer:
                yield buffer


def paging(limit: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return params


def seg(kind: str, value: str) -> str:
    """``value`` as one path segment. Servers decode %2F before routing and clients drop dot
    segments, so an id with a '/' or made of dots would reach another route; no such id can
    exist, so it is NotFound here, as the local backend says."""
    if not value or "/" in value or value.strip(".") == "":
        raise NotFound(f"{kind} {value!r} not found")
    return quote(value, safe="")


def error_from(resp: Response) -> AgentSDKError:
    """The exception a problem answer stands for."""
    body: Any = None
    if "json" in resp.headers.get("content-type", ""):
        try:
            body = resp.json()
        except ValueError:
            body = None
    status = resp.status_code
    fallback = _BY_STATUS.get(status, AgentSDKError)
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return fallback(f"the server answered {status} {resp.reason_phrase}".rstrip())
    code: str = body["code"]
    detail = str(body.get("detail") or body.get("title") or status)
    hint = body.get("hint") if isinstance(body.get("hint"), str) else None
    if status == 429 and hint is None and resp.headers.get("Retry-After"):
        hint = f"retry after {resp.headers['Retry-After']} s"
    if status == 401:
        hint = (
            "set AGENT_SDK_API_KEY to the server's admin token (`agent-sdk up` writes it to "
            "admin-token in its data directory)"
        )
    extra: dict[str, Any] = {}
    if code == ModelError.code:
        extra["retryable"] = bool(body.get("retryable"))
    if code == WrongRegion.code:  # which regions: for a script reading the CLI's JSON error
        extra.update({k: body[k] for k in ("org_region", "server_region") if k in body})
    error = error_from_code(code, detail, hint=hint, **extra)
    if type(error) is AgentSDKError and code != AgentSDKError.code:
        error = fallback(detail, hint=hint)  # a code this version does not know
    return error


__all__ = ["RETRY_STATUSES", "HttpClient", "error_from", "paging", "seg"]
