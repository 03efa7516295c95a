"""The Backend over a server's ``/v1`` API: each operation is one call (or one stream) that
answers with records. The connection, the calls and the translation of errors are in
:mod:`agent_sdk.backend._http_client`, the bytes over :mod:`agent_sdk.backend._wire`.

A few checks run here, before a request leaves, so that both backends refuse the same input the
same way: an Idempotency-Key, an audit export format, and an anchor of audit checkpoints, which
stays with the caller together with the public key that verifies it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from agent_sdk import records
from agent_sdk.backend._http_client import RETRY_STATUSES, HttpClient, error_from, paging, seg
from agent_sdk.backend._sse import parse_sse
from agent_sdk.backend._wire import TransportFailure
from agent_sdk.errors import BackendUnavailable, InvalidInput
from agent_sdk.records._base import Record

if TYPE_CHECKING:  # annotations only: a call loads the records it returns (see records/)
    from agent_sdk.records import (
        ApiKey,
        AuditEntry,
        Checkpoint,
        Deletion,
        EncryptionKey,
        Event,
        MigrationState,
        Org,
        Page,
        Preview,
        Principal,
        Progress,
        RedactionView,
        Residency,
        RetentionView,
        RewrapReport,
        Run,
        Session,
        SweepReport,
        VerifyReport,
    )

R = TypeVar("R", bound=Record)

# A stream stays open between events; the server sends a keepalive every 15 s, so a read that
# waits far longer than that means the connection is dead.
STREAM_READ_TIMEOUT = 60.0
FOLLOW_RETRIES = 5
# A sweep on demand deletes in batches on the server until done: allow it longer than a call.
SWEEP_TIMEOUT = 600.0


class HttpBackend(HttpClient):
    kind = "http"

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
            from agent_sdk.records.runs import check_idempotency_key

            headers = {"Idempotency-Key": check_idempotency_key(idempotency_key)}
        return records.Run.from_dict(self._call("POST", "/v1/runs", json=body, headers=headers))

    def get_run(self, run_id: str) -> Run:
        return records.Run.from_dict(self._call("GET", f"/v1/runs/{seg('run', run_id)}"))

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
        return _page(records.Run, data)

    def cancel_run(self, run_id: str) -> Run:
        return records.Run.from_dict(self._call("POST", f"/v1/runs/{seg('run', run_id)}/cancel"))

    def retry_run(self, run_id: str) -> Run:
        return records.Run.from_dict(self._call("POST", f"/v1/runs/{seg('run', run_id)}/retry"))

    def retry_runs(self, status: Sequence[str], since: str | None = None) -> list[Run]:
        body: dict[str, Any] = {"status": list(status)}
        if since is not None:
            body["since"] = since
        data = self._call("POST", "/v1/runs/retry", json=body)
        return [records.Run.from_dict(r) for r in data["data"]]

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/status"))

    def list_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        params = {"after": after, "limit": limit}
        data = self._call("GET", f"/v1/runs/{seg('run', run_id)}/events", params=params)
        return [records.Event.from_dict(e) for e in data["data"]]

    def follow_events(self, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """Events as they happen, to the terminal event. A dropped connection is resumed with
        ``Last-Event-ID`` (so nothing is lost or repeated), a few times with backoff."""
        path = f"/v1/runs/{seg('run', run_id)}/events"
        headers = {**self._headers, "Accept": "text/event-stream"}
        failures = 0
        while True:
            headers["Last-Event-ID"] = str(after)
            try:
                with self._wire.stream(
                    "GET", path, headers=headers, read_timeout=STREAM_READ_TIMEOUT
                ) as resp:
                    if resp.status_code == 204:
                        return  # the run ended at or before `after`: nothing follows
                    if resp.status_code >= 400:
                        resp.read()
                        error = error_from(resp)
                        if resp.status_code not in RETRY_STATUSES:
                            raise error
                    else:
                        for event in parse_sse(resp.iter_text()):
                            yield event
                            after, failures = event.seq, 0
                            if event.terminal:
                                return
                        error = BackendUnavailable("the event stream ended before the run did")
            except TransportFailure as exc:
                error = exc
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
        return _page(records.Session, data)

    def get_session(self, session_id: str) -> Session:
        return records.Session.from_dict(
            self._call("GET", f"/v1/sessions/{seg('session', session_id)}")
        )

    # -- erasure --------------------------------------------------------------------------------
    def delete_run(self, run_id: str) -> Deletion:
        return records.Deletion.from_dict(
            self._call("DELETE", f"/v1/admin/runs/{seg('run', run_id)}")
        )

    def delete_session(self, session_id: str) -> Deletion:
        path = f"/v1/admin/sessions/{seg('session', session_id)}"
        return records.Deletion.from_dict(self._call("DELETE", path))

    # -- access control ---------------------------------------------------------------------------
    def whoami(self) -> Principal:
        data = dict(self._call("GET", "/v1/auth/whoami"))
        data["scopes"] = frozenset(data.get("scopes") or ())
        data["ip_allowlist"] = tuple(data.get("ip_allowlist") or ())
        return records.Principal.from_dict(data)

    def create_org(self, org_id: str, *, name: str | None = None) -> Org:
        body: dict[str, Any] = {"id": org_id}
        if name is not None:
            body["name"] = name
        return records.Org.from_dict(self._call("POST", "/v1/admin/orgs", json=body))

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        data = self._call("GET", "/v1/admin/orgs", params=paging(limit, cursor))
        return _page(records.Org, data)

    def get_org(self, org_id: str) -> Org:
        return records.Org.from_dict(self._call("GET", f"/v1/admin/orgs/{seg('org', org_id)}"))

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
        data = self._call("GET", "/v1/admin/api-keys", params=paging(limit, cursor))
        return _page(records.ApiKey, data)

    def get_key(self, key_id: str) -> ApiKey:
        return records.ApiKey.from_dict(
            self._call("GET", f"/v1/admin/api-keys/{seg('key', key_id)}")
        )

    def rotate_key(self, key_id: str, *, grace_seconds: float = 0) -> tuple[ApiKey, str]:
        path = f"/v1/admin/api-keys/{seg('key', key_id)}/rotate"
        return _key_and_token(self._call("POST", path, json={"grace_seconds": grace_seconds}))

    def revoke_key(self, key_id: str) -> ApiKey:
        path = f"/v1/admin/api-keys/{seg('key', key_id)}/revoke"
        return records.ApiKey.from_dict(self._call("POST", path))

    def audit_tail(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        params = {"after": after, "limit": limit}
        data = self._call("GET", "/v1/admin/audit-logs", params=params)
        return [records.AuditEntry.from_dict(e) for e in data["data"]]

    def audit_export(self, *, format: str = "jsonl", since: str | None = None) -> Iterator[str]:
        from agent_sdk.records.audit import check_format

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
        if anchor is None:
            if public_key is None:
                return records.VerifyReport.from_dict(
                    self._call("GET", "/v1/admin/audit-logs/verify")
                )
            body = {"public_key": public_key}
            return records.VerifyReport.from_dict(
                self._call("POST", "/v1/admin/audit-logs/verify", json=body)
            )
        # The anchor stays here, with the key the verifier trusts: it may be large (one line per
        # checkpoint, for years), and comparing it needs only the stored checkpoints, read
        # before the server walks the log, as the local backend reads them.
        if public_key is None:
            raise InvalidInput(
                "an anchor is checked against a public key you hold",
                hint="pass the PEM public key of the audit signing key (--public-key FILE)",
            )
        from agent_sdk.audit_anchor import CheckpointVerifier, check_anchor

        verifier = CheckpointVerifier.from_pem(public_key)
        stored = list(self.audit_checkpoints())
        data = self._call("POST", "/v1/admin/audit-logs/verify", json={"public_key": public_key})
        return check_anchor(records.VerifyReport.from_dict(data), anchor, stored, verifier)

    def audit_checkpoints(self, *, after: int = 0) -> Iterator[Checkpoint]:
        params = {"after": after}
        for line in self._stream_lines("/v1/admin/audit-logs/checkpoints", params):
            if line.strip():
                yield records.Checkpoint.from_dict(json.loads(line))

    def get_residency(self) -> Residency:
        return records.Residency.from_dict(self._call("GET", "/v1/admin/residency"))

    def set_residency(self, region: str | None) -> Residency:
        if region is None:
            return records.Residency.from_dict(self._call("DELETE", "/v1/admin/residency"))
        data = self._call("PUT", "/v1/admin/residency", json={"region": region})
        return records.Residency.from_dict(data)

    # -- encryption at rest -----------------------------------------------------------------------
    def list_encryption_keys(self) -> list[EncryptionKey]:
        data = self._call("GET", "/v1/admin/encryption-keys")
        return [records.EncryptionKey.from_dict(k) for k in data["data"]]

    def rotate_encryption_key(self) -> EncryptionKey:
        return records.EncryptionKey.from_dict(self._call("POST", "/v1/admin/encryption-keys"))

    def destroy_encryption_keys(self) -> list[EncryptionKey]:
        data = self._call("DELETE", "/v1/admin/encryption-keys")
        return [records.EncryptionKey.from_dict(k) for k in data["data"]]

    def rewrap_encryption(self, *, limit: int = 500, cursor: str | None = None) -> RewrapReport:
        body: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            body["cursor"] = cursor
        return records.RewrapReport.from_dict(
            self._call("POST", "/v1/admin/encryption-keys/rewrap", json=body)
        )

    # -- retention --------------------------------------------------------------------------------
    def get_retention(self) -> RetentionView:
        return records.RetentionView.from_dict(self._call("GET", "/v1/admin/retention"))

    def set_retention(self, policy: Mapping[str, int | None]) -> RetentionView:
        data = self._call("PUT", "/v1/admin/retention", json=dict(policy))
        return records.RetentionView.from_dict(data)

    def clear_retention(self) -> RetentionView:
        return records.RetentionView.from_dict(self._call("DELETE", "/v1/admin/retention"))

    def retention_sweep(
        self, *, all_orgs: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> SweepReport:
        """The server sweeps; ``progress`` hears the totals of each org once it answers."""

        params = {"dry_run": str(dry_run).lower(), "all_orgs": str(all_orgs).lower()}
        data = self._call("POST", "/v1/admin/retention/sweep", params=params, timeout=SWEEP_TIMEOUT)
        report = records.SweepReport.from_dict(data)
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
        path = f"/v1/admin/redaction/patterns/{seg('custom pattern', name)}"
        return _redaction(self._call("PUT", path, json=body))

    def delete_redaction_pattern(self, name: str) -> RedactionView:
        path = f"/v1/admin/redaction/patterns/{seg('custom pattern', name)}"
        return _redaction(self._call("DELETE", path))

    def preview_redaction(self, text: str) -> Preview:
        data = self._call("POST", "/v1/admin/redaction/preview", json={"text": text})
        return records.Preview.from_dict(data)

    # -- database -------------------------------------------------------------------------------
    def migrate(self) -> list[MigrationState]:
        raise _local_only()

    def migration_status(self) -> list[MigrationState]:
        raise _local_only()


def _page(record: type[R], data: dict[str, Any]) -> Page[R]:
    return records.Page([record.from_dict(x) for x in data["data"]], data.get("next_cursor"))


def _redaction(data: dict[str, Any]) -> RedactionView:
    return records.RedactionView.from_dict(data)


def _local_only() -> InvalidInput:
    return InvalidInput(
        "db commands act on a local database", hint="run them with --local on the server's host"
    )


def _key_and_token(data: dict[str, Any]) -> tuple[ApiKey, str]:
    return records.ApiKey.from_dict(data["key"]), str(data["token"])


__all__ = ["HttpBackend"]
