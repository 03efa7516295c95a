"""The Backend over a server's ``/v1`` API, with httpx.

httpx is imported when the backend is built, not with this module: the CLI imports this module
at start-up and most of its calls never talk to a server. Driver errors are translated here, at
the boundary: a problem answer becomes the exception of :mod:`agent_sdk.errors` named by its
``code``; a server that cannot be reached becomes :class:`BackendUnavailable`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent_sdk._version import __version__
from agent_sdk.backend._sse import parse_sse
from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    InvalidInput,
    ModelError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    WrongRegion,
    error_from_code,
)
from agent_sdk.masking import mask_url, scrub, url_secrets
from agent_sdk.records import (
    ApiKey,
    AuditEntry,
    Checkpoint,
    Deletion,
    Event,
    MigrationState,
    Org,
    Page,
    Principal,
    Run,
    Session,
)

# ensure_ascii (the default): every character is escaped, a lone surrogate too.
_ascii_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

if TYPE_CHECKING:
    import httpx

    from agent_sdk.config import Settings
    from agent_sdk.core.residency import Residency
    from agent_sdk.core.retention import RetentionView
    from agent_sdk.core.retention_sweep import Progress, SweepReport
    from agent_sdk.governance.audit_verify import VerifyReport
    from agent_sdk.governance.encryption_keys import EncryptionKey, RewrapReport
    from agent_sdk.governance.redact_policy import Preview, RedactionView

# A stream stays open between events; the server sends a keepalive every 15 s, so a read that
# waits far longer than that means the connection is dead.
STREAM_READ_TIMEOUT = 60.0
FOLLOW_RETRIES = 5
# A sweep on demand deletes in batches on the server until done: allow it longer than a call.
SWEEP_TIMEOUT = 600.0
_RETRY_STATUSES = frozenset({502, 503, 504})

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


class HttpBackend:
    kind = "http"

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        """Talk to ``settings.server_url`` as ``settings.org_id``. ``client`` (an httpx.Client
        such as Starlette's TestClient, with its own base URL) is used as is and left open;
        otherwise the backend makes a client, over ``transport`` when given. Without an org in
        the settings no ``X-Org-Id`` is sent and the server acts in the credential's own org."""
        import httpx

        self.settings = settings
        self.org_id = settings.org_id
        self._headers = {
            "User-Agent": f"agent-sdk/{__version__}",
            "Accept": "application/json",
        }
        if settings.org_id is not None:
            self._headers["X-Org-Id"] = settings.org_id
        token = api_key or settings.api_key
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._owns_client = client is None
        if client is None:
            try:
                client = httpx.Client(
                    base_url=settings.server_url,
                    transport=transport,
                    timeout=httpx.Timeout(30.0, connect=5.0),
                )
            except httpx.InvalidURL as exc:  # "http://[::1", a port out of range
                raise _bad_url(settings.server_url, exc) from None
        self._client = client
        # As messages show it: a URL given with user:password@ must not echo the password.
        self.base_url = mask_url(str(client.base_url).rstrip("/"))

    # -- runs -----------------------------------------------------------------------------------
    def create_run(
        self,
        agent: str | dict[str, Any],
        input: str,
        *,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        script: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        body: dict[str, Any] = {"agent": agent, "input": input}
        for key, value in (("session_id", session_id), ("metadata", metadata), ("script", script)):
            if value is not None:
                body[key] = value
        headers = None
        if idempotency_key is not None:
            # Checked here as the server would: a key httpx cannot put in a header (non-ASCII)
            # must be the same InvalidInput as over the local backend, not an encoding error.
            from agent_sdk.core.run_requests import check_idempotency_key

            headers = {"Idempotency-Key": check_idempotency_key(idempotency_key)}
        return Run.from_dict(self._call("POST", "/v1/runs", json=body, headers=headers))

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._call("GET", f"/v1/runs/{_seg('run', run_id)}"))

    def list_runs(
        self,
        *,
        status: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = ",".join(status)
        if session_id is not None:
            params["session_id"] = session_id
        if cursor is not None:
            params["cursor"] = cursor
        data = self._call("GET", "/v1/runs", params=params)
        return Page([Run.from_dict(r) for r in data["data"]], data.get("next_cursor"))

    def cancel_run(self, run_id: str) -> Run:
        return Run.from_dict(self._call("POST", f"/v1/runs/{_seg('run', run_id)}/cancel"))

    def retry_run(self, run_id: str) -> Run:
        return Run.from_dict(self._call("POST", f"/v1/runs/{_seg('run', run_id)}/retry"))

    def retry_runs(self, status: Sequence[str], since: str | None = None) -> list[Run]:
        body: dict[str, Any] = {"status": list(status)}
        if since is not None:
            body["since"] = since
        data = self._call("POST", "/v1/runs/retry", json=body)
        return [Run.from_dict(r) for r in data["data"]]

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/status"))

    def list_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        params = {"after": after, "limit": limit}
        data = self._call("GET", f"/v1/runs/{_seg('run', run_id)}/events", params=params)
        return [Event.from_dict(e) for e in data["data"]]

    def follow_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Events as they happen, to the terminal event. A dropped connection is resumed with
        ``Last-Event-ID`` (so nothing is lost or repeated), a few times with backoff."""
        import httpx

        path = f"/v1/runs/{_seg('run', run_id)}/events"
        headers = {**self._headers, "Accept": "text/event-stream"}
        # A given client keeps its own timeouts (Starlette's TestClient refuses per-request ones).
        extra: dict[str, Any] = {}
        if self._owns_client:
            extra["timeout"] = httpx.Timeout(30.0, connect=5.0, read=STREAM_READ_TIMEOUT)
        failures = 0
        while True:
            headers["Last-Event-ID"] = str(after)
            try:
                with self._client.stream("GET", path, headers=headers, **extra) as resp:
                    if resp.status_code == 204:
                        return  # the run ended at or before `after`: nothing follows
                    if resp.status_code >= 400:
                        resp.read()
                        error = _error_from(resp)
                        if resp.status_code not in _RETRY_STATUSES:
                            raise error
                    else:
                        for event in parse_sse(resp.iter_text()):
                            yield event
                            after, failures = event.seq, 0
                            if event.terminal:
                                return
                        error = BackendUnavailable("the event stream ended before the run did")
            except httpx.TransportError as exc:
                error = self._unreachable(exc)
            failures += 1
            if failures > FOLLOW_RETRIES:
                raise error
            time.sleep(min(0.25 * 2 ** (failures - 1), 4.0))

    # -- sessions -------------------------------------------------------------------------------
    def list_sessions(self, *, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        data = self._call("GET", "/v1/sessions", params=params)
        return Page([Session.from_dict(s) for s in data["data"]], data.get("next_cursor"))

    def get_session(self, session_id: str) -> Session:
        return Session.from_dict(self._call("GET", f"/v1/sessions/{_seg('session', session_id)}"))

    # -- erasure --------------------------------------------------------------------------------
    def delete_run(self, run_id: str) -> Deletion:
        return Deletion.from_dict(self._call("DELETE", f"/v1/admin/runs/{_seg('run', run_id)}"))

    def delete_session(self, session_id: str) -> Deletion:
        path = f"/v1/admin/sessions/{_seg('session', session_id)}"
        return Deletion.from_dict(self._call("DELETE", path))

    # -- access control ---------------------------------------------------------------------------
    def whoami(self) -> Principal:
        data = dict(self._call("GET", "/v1/auth/whoami"))
        data["scopes"] = frozenset(data.get("scopes") or ())
        data["ip_allowlist"] = tuple(data.get("ip_allowlist") or ())
        return Principal.from_dict(data)

    def create_org(self, org_id: str, *, name: str | None = None) -> Org:
        body: dict[str, Any] = {"id": org_id}
        if name is not None:
            body["name"] = name
        return Org.from_dict(self._call("POST", "/v1/admin/orgs", json=body))

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        data = self._call("GET", "/v1/admin/orgs", params=_paging(limit, cursor))
        return Page([Org.from_dict(o) for o in data["data"]], data.get("next_cursor"))

    def get_org(self, org_id: str) -> Org:
        return Org.from_dict(self._call("GET", f"/v1/admin/orgs/{_seg('org', org_id)}"))

    def create_key(
        self,
        *,
        name: str,
        role: str = "viewer",
        scopes: Sequence[str] | None = None,
        expires_at: str | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
    ) -> tuple[ApiKey, str]:
        body: dict[str, Any] = {"name": name, "role": role}
        optional: dict[str, Any] = {
            "scopes": list(scopes) if scopes is not None else None,
            "expires_at": expires_at,
            "rate_per_second": rate_per_second,
            "burst": burst,
            "ip_allowlist": list(ip_allowlist) if ip_allowlist is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return _key_and_token(self._call("POST", "/v1/admin/api-keys", json=body))

    def list_keys(self, *, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        data = self._call("GET", "/v1/admin/api-keys", params=_paging(limit, cursor))
        return Page([ApiKey.from_dict(k) for k in data["data"]], data.get("next_cursor"))

    def get_key(self, key_id: str) -> ApiKey:
        return ApiKey.from_dict(self._call("GET", f"/v1/admin/api-keys/{_seg('key', key_id)}"))

    def rotate_key(self, key_id: str, *, grace_seconds: float = 0) -> tuple[ApiKey, str]:
        path = f"/v1/admin/api-keys/{_seg('key', key_id)}/rotate"
        return _key_and_token(self._call("POST", path, json={"grace_seconds": grace_seconds}))

    def revoke_key(self, key_id: str) -> ApiKey:
        path = f"/v1/admin/api-keys/{_seg('key', key_id)}/revoke"
        return ApiKey.from_dict(self._call("POST", path))

    def audit_tail(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        params = {"after": after, "limit": limit}
        data = self._call("GET", "/v1/admin/audit-logs", params=params)
        return [AuditEntry.from_dict(e) for e in data["data"]]

    def audit_export(self, *, format: str = "jsonl", since: str | None = None) -> Iterator[str]:
        from agent_sdk.governance.audit import check_format

        check_format(format)  # on call, as the local backend does, not at the first line
        params: dict[str, Any] = {"format": format}
        if since is not None:
            params["since"] = since
        return self._stream_lines("/v1/admin/audit-logs/export", params)

    def audit_verify(
        self,
        *,
        anchor: Sequence[Checkpoint] | None = None,
        public_key: str | None = None,
    ) -> VerifyReport:
        from agent_sdk.governance.audit_verify import VerifyReport

        if anchor is None:
            if public_key is None:
                return VerifyReport.from_dict(self._call("GET", "/v1/admin/audit-logs/verify"))
            body = {"public_key": public_key}
            return VerifyReport.from_dict(
                self._call("POST", "/v1/admin/audit-logs/verify", json=body)
            )
        # The anchor stays here, with the key the verifier trusts: it may be large (one line per
        # checkpoint, for years), and comparing it needs only the stored checkpoints, read
        # before the server walks the log, as the local backend reads them.
        from agent_sdk.governance.audit_anchor import check_anchor
        from agent_sdk.governance.audit_keys import CheckpointVerifier

        if public_key is None:
            raise InvalidInput(
                "an anchor is checked against a public key you hold",
                hint="pass the PEM public key of the audit signing key (--public-key FILE)",
            )
        verifier = CheckpointVerifier.from_pem(public_key)
        stored = list(self.audit_checkpoints())
        data = self._call("POST", "/v1/admin/audit-logs/verify", json={"public_key": public_key})
        return check_anchor(VerifyReport.from_dict(data), anchor, stored, verifier)

    def audit_checkpoints(self, *, after: int = 0) -> Iterator[Checkpoint]:
        params = {"after": after}
        for line in self._stream_lines("/v1/admin/audit-logs/checkpoints", params):
            if line.strip():
                yield Checkpoint.from_dict(json.loads(line))

    def get_residency(self) -> Residency:
        from agent_sdk.core.residency import Residency

        return Residency.from_dict(self._call("GET", "/v1/admin/residency"))

    def set_residency(self, region: str | None) -> Residency:
        from agent_sdk.core.residency import Residency

        if region is None:
            return Residency.from_dict(self._call("DELETE", "/v1/admin/residency"))
        data = self._call("PUT", "/v1/admin/residency", json={"region": region})
        return Residency.from_dict(data)

    # -- encryption at rest -----------------------------------------------------------------------
    def list_encryption_keys(self) -> list[EncryptionKey]:
        from agent_sdk.governance.encryption_keys import EncryptionKey

        data = self._call("GET", "/v1/admin/encryption-keys")
        return [EncryptionKey.from_dict(k) for k in data["data"]]

    def rotate_encryption_key(self) -> EncryptionKey:
        from agent_sdk.governance.encryption_keys import EncryptionKey

        return EncryptionKey.from_dict(self._call("POST", "/v1/admin/encryption-keys"))

    def destroy_encryption_keys(self) -> list[EncryptionKey]:
        from agent_sdk.governance.encryption_keys import EncryptionKey

        data = self._call("DELETE", "/v1/admin/encryption-keys")
        return [EncryptionKey.from_dict(k) for k in data["data"]]

    def rewrap_encryption(self, *, limit: int = 500, cursor: str | None = None) -> RewrapReport:
        from agent_sdk.governance.encryption_keys import RewrapReport

        body: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            body["cursor"] = cursor
        return RewrapReport.from_dict(
            self._call("POST", "/v1/admin/encryption-keys/rewrap", json=body)
        )

    # -- retention --------------------------------------------------------------------------------
    def get_retention(self) -> RetentionView:
        from agent_sdk.core.retention import RetentionView

        return RetentionView.from_dict(self._call("GET", "/v1/admin/retention"))

    def set_retention(self, policy: Mapping[str, int | None]) -> RetentionView:
        from agent_sdk.core.retention import RetentionView

        data = self._call("PUT", "/v1/admin/retention", json=dict(policy))
        return RetentionView.from_dict(data)

    def clear_retention(self) -> RetentionView:
        from agent_sdk.core.retention import RetentionView

        return RetentionView.from_dict(self._call("DELETE", "/v1/admin/retention"))

    def retention_sweep(
        self, *, all_orgs: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> SweepReport:
        """The server sweeps; ``progress`` hears the totals of each org once it answers."""
        from agent_sdk.core.retention_sweep import SweepReport

        params = {"dry_run": str(dry_run).lower(), "all_orgs": str(all_orgs).lower()}
        data = self._call("POST", "/v1/admin/retention/sweep", params=params, timeout=SWEEP_TIMEOUT)
        report = SweepReport.from_dict(data)
        if progress is not None:
            for org in report.orgs:
                for what in ("events", "runs", "sessions", "audit_records"):
                    progress(org.org_id, what.replace("_", " "), getattr(org, what))
        return report

    # -- PII redaction ----------------------------------------------------------------------------
    def get_redaction(self) -> RedactionView:
        return _redaction(self._call("GET", "/v1/admin/redaction"))

    def set_redaction(self, policy: Mapping[str, Any]) -> RedactionView:
        return _redaction(self._call("PUT", "/v1/admin/redaction", json=dict(policy)))

    def reset_redaction(self) -> RedactionView:
        return _redaction(self._call("DELETE", "/v1/admin/redaction"))

    def set_redaction_pattern(
        self, name: str, regex: str, placeholder: str | None = None
    ) -> RedactionView:
        body: dict[str, Any] = {"regex": regex}
        if placeholder is not None:
            body["placeholder"] = placeholder
        path = f"/v1/admin/redaction/patterns/{_seg('custom pattern', name)}"
        return _redaction(self._call("PUT", path, json=body))

    def delete_redaction_pattern(self, name: str) -> RedactionView:
        path = f"/v1/admin/redaction/patterns/{_seg('custom pattern', name)}"
        return _redaction(self._call("DELETE", path))

    def preview_redaction(self, text: str) -> Preview:
        from agent_sdk.governance.redact_policy import Preview

        data = self._call("POST", "/v1/admin/redaction/preview", json={"text": text})
        return Preview.from_dict(data)

    # -- database -------------------------------------------------------------------------------
    def migrate(self) -> list[MigrationState]:
        raise _local_only()

    def migration_status(self) -> list[MigrationState]:
        raise _local_only()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def reachable(self) -> bool:
        """Whether anything answers HTTP at the server URL (any status will do: the question
        is whether a server is there, not whether it accepts us). A URL that cannot be used
        at all is a ConfigError, as on every other call."""
        import httpx

        try:
            self._client.get("/health", headers=self._headers)
        except httpx.UnsupportedProtocol as exc:
            raise _bad_url(self.settings.server_url, exc) from None
        except httpx.TransportError:
            return False
        except httpx.InvalidURL as exc:
            raise _bad_url(self.settings.server_url, exc) from None
        return True

    # -- plumbing -------------------------------------------------------------------------------
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
        import httpx

        # A given client keeps its own timeouts (Starlette's TestClient refuses per-request ones).
        extra: dict[str, Any] = {"timeout": timeout} if timeout and self._owns_client else {}
        all_headers = {**self._headers, **headers} if headers else dict(self._headers)
        content = None
        if json is not None:
            # ASCII JSON, as httpx's own UTF-8 cannot encode a lone surrogate (an argument that
            # is not UTF-8): escaped, it reaches the server, which refuses it naming the field,
            # as the local backend does.
            content = _ascii_json(json).encode("ascii")
            all_headers["Content-Type"] = "application/json"
        try:
            resp = self._client.request(
                method, path, params=params, content=content, headers=all_headers, **extra
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except httpx.InvalidURL as exc:
            raise _bad_url(self.settings.server_url, exc) from None
        if resp.status_code >= 400:
            raise _error_from(resp)
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
        import httpx

        headers = {**self._headers, "Accept": "*/*"}
        try:
            with self._client.stream("GET", path, params=params, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error_from(resp)
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
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except httpx.InvalidURL as exc:
            raise _bad_url(self.settings.server_url, exc) from None

    def _unreachable(self, exc: Exception) -> AgentSDKError:
        import httpx

        if isinstance(exc, httpx.UnsupportedProtocol):
            return _bad_url(self.settings.server_url, exc)
        why = " (no answer in time)" if isinstance(exc, httpx.TimeoutException) else ""
        return BackendUnavailable(
            f"cannot reach the agent-sdk server at {self.base_url}{why}",
            hint="start it with `agent-sdk up`, or use --local",
        )


def _redaction(data: dict[str, Any]) -> RedactionView:
    from agent_sdk.governance.redact_policy import RedactionView

    return RedactionView.from_dict(data)


def _local_only() -> InvalidInput:
    return InvalidInput(
        "db commands act on a local database", hint="run them with --local on the server's host"
    )


def _paging(limit: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return params


def _key_and_token(data: dict[str, Any]) -> tuple[ApiKey, str]:
    return ApiKey.from_dict(data["key"]), str(data["token"])


def _seg(kind: str, value: str) -> str:
    """``value`` as one path segment. Servers decode %2F before routing and clients drop dot
    segments, so an id with a '/' or made of dots would reach another route; no such id can
    exist, so it is NotFound here, as the local backend says."""
    if not value or "/" in value or value.strip(".") == "":
        raise NotFound(f"{kind} {value!r} not found")
    return quote(value, safe="")


def _bad_url(url: str, exc: Exception) -> ConfigError:
    why = scrub(str(exc), url_secrets(url))  # httpx may quote the URL it refused
    return ConfigError(
        f"AGENT_SDK_SERVER_URL={mask_url(url)!r} is not a usable URL ({why})",
        hint="use http://host:port or https://host",
    )


def _error_from(resp: httpx.Response) -> AgentSDKError:
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


__all__ = ["HttpBackend"]
