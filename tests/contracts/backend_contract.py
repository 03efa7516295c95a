"""The Backend contract: every operation the CLI and the TUI use, with the same results and the
same errors whether it runs in-process or through a server.

Use it by subclassing with a ``backend`` fixture that yields a backend bound to an org of its
own (empty at the start of each test), and a ``backend_in_org`` fixture that yields a factory of
backends bound to a given org id::

    class TestLocalBackend(BackendContract):
        @pytest.fixture
        def backend(self, settings): ...

        @pytest.fixture
        def backend_in_org(self, settings): ...

Tests here use only the Backend protocol.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent_sdk.backend.base import Backend
from agent_sdk.config import Settings
from agent_sdk.errors import Conflict, InvalidInput, NotFound
from agent_sdk.governance.audit import CSV_COLUMNS, read_csv, read_jsonl
from agent_sdk.governance.audit_verify import VerifyReport
from agent_sdk.records import (
    ApiKey,
    AuditEntry,
    Event,
    Org,
    Page,
    Principal,
    Run,
    RunStatus,
    Session,
)


def slow(latency: float, name: str = "slow") -> dict[str, Any]:
    return {"name": name, "model": "scripted", "latency": latency, "script": [{"text": "done"}]}


BOOM = {"name": "boom", "model": "scripted", "script": [{"error": "boom"}]}


def steps(n: int, latency: float = 0.0) -> dict[str, Any]:
    """An agent that lists the working directory ``n`` times, then answers."""
    script: list[dict[str, Any]] = [{"tool": "fs.list", "arguments": {"path": "."}}] * n
    return {"name": "steps", "model": "scripted", "latency": latency, "script": [*script,
            {"text": "ok"}]}  # fmt: skip


def wait_for(
    backend: Backend, run_id: str, done: Callable[[Run], bool], timeout: float = 10.0
) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = backend.get_run(run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is still {run.status}")
        time.sleep(0.01)


def finished(backend: Backend, run_id: str, timeout: float = 10.0) -> Run:
    return wait_for(backend, run_id, lambda r: r.status.terminal, timeout)


def walk(list_page: Callable[[str | None], Page[Any]]) -> list[Any]:
    """Every item of a listing, following cursors; fails on a cursor loop."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(100):
        page = list_page(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert page.next_cursor != cursor
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


def unique(prefix: str) -> str:
    """An org id no other test uses (the TCP suite shares one server for the whole module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def whole_log(backend: Backend) -> list[AuditEntry]:
    """The backend org's audit log (a test's log fits in one page of the newest records)."""
    entries = backend.audit_tail(limit=1000)
    assert not entries or entries[0].seq == 1, "the log outgrew one page"
    return entries


class BackendContract:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # The contract runs with the audit hash chain on, so `audit_verify` has a chain to check
        # and every other operation is shown to keep it intact. (A backend whose server runs
        # without the chain is held to the unchained answer instead; see test_audit_verify.)
        return settings.replace(audit_hash_chain=True)

    # -- create and show ------------------------------------------------------------------------
    def test_create_returns_a_queued_run_that_show_finds(self, backend: Backend) -> None:
        run = backend.create_run("demo", "hello there", metadata={"ticket": 42})
        assert isinstance(run, Run)
        assert run.id.startswith("run_")
        assert (run.agent, run.input, run.status) == ("demo", "hello there", RunStatus.QUEUED)
        assert run.metadata == {"ticket": 42}
        assert backend.get_run(run.id).id == run.id

    def test_an_idempotency_key_makes_a_retry_return_the_first_run(self, backend: Backend) -> None:
        key = f"ci-step-{uuid.uuid4()}"
        first = backend.create_run("demo", "hello", metadata={"n": 1}, idempotency_key=key)
        again = backend.create_run("demo", "hello", metadata={"n": 1}, idempotency_key=key)
        assert again == first  # the run as first created, whatever it has done since
        assert [r.id for r in backend.list_runs().items] == [first.id]
        with pytest.raises(InvalidInput, match="different request"):
            backend.create_run("demo", "another input", idempotency_key=key)
        other = backend.create_run("demo", "hello", idempotency_key=f"{key}-2")
        assert other.id != first.id

    @pytest.mark.parametrize("key", ["", "   ", "x" * 256, "caf\u00e9", "tab\there"])
    def test_bad_idempotency_keys_are_invalid_input(self, backend: Backend, key: str) -> None:
        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            backend.create_run("demo", "hello", idempotency_key=key)
        assert backend.list_runs().items == []

    def test_a_run_finishes_with_output_and_usage(self, backend: Backend) -> None:
        run = backend.create_run("demo", "summarise README.md")
        done = finished(backend, run.id)
        assert done.status is RunStatus.SUCCEEDED
        assert "summarise README.md" in (done.output or "")
        assert done.usage["total_tokens"] > 0
        assert done.attempts == 1 and done.steps == 2
        assert done.started_at and done.finished_at and done.error is None

    def test_inline_specs_and_scripts(self, backend: Backend) -> None:
        spec = {"name": "echo", "model": "scripted", "script": [{"text": "you said {input}"}]}
        run = backend.create_run(spec, "hi")
        assert run.agent == "echo"
        assert finished(backend, run.id).output == "you said hi"
        scripted = backend.create_run("demo", "x", script=[{"text": "scripted answer"}])
        assert finished(backend, scripted.id).output == "scripted answer"

    def test_unicode_and_awkward_input_round_trips(self, backend: Backend) -> None:
        text = 'ünïcödé 日本語 🤖 \u2028 line\nbreak "quoted" \'; DROP TABLE runs; --'
        run = backend.create_run("demo", text, metadata={"k": text})
        shown = backend.get_run(run.id)
        assert shown.input == text and shown.metadata == {"k": text}

    # -- events ---------------------------------------------------------------------------------
    def test_events_are_a_gapless_page_that_resumes_after_any_seq(self, backend: Backend) -> None:
        run = backend.create_run("demo", "go")
        finished(backend, run.id)
        events = backend.list_events(run.id)
        assert all(isinstance(e, Event) for e in events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].type == "run.created" and events[-1].type == "run.succeeded"
        assert backend.list_events(run.id, after=2, limit=3) == events[2:5]
        assert backend.list_events(run.id, after=len(events)) == []

    def test_follow_a_live_run_to_its_terminal_event(self, backend: Backend) -> None:
        run = backend.create_run(steps(3, latency=0.05), "go")
        followed = list(backend.follow_events(run.id))
        assert [e.seq for e in followed] == list(range(1, len(followed) + 1))
        assert followed[-1].type == "run.succeeded" and followed[-1].terminal
        assert followed == backend.list_events(run.id)
        # Resuming after any seq gives exactly the rest.
        assert list(backend.follow_events(run.id, after=4)) == followed[4:]
        assert list(backend.follow_events(run.id, after=len(followed) - 1)) == followed[-1:]

    def test_follow_can_be_abandoned_early(self, backend: Backend) -> None:
        run = backend.create_run(slow(2), "x")
        stream = backend.follow_events(run.id)
        assert next(iter(stream)).type == "run.created"
        stream.close()  # type: ignore[attr-defined]
        backend.cancel_run(run.id)
        assert finished(backend, run.id).status is RunStatus.CANCELLED

    # -- listing --------------------------------------------------------------------------------
    def test_list_runs_newest_first_across_pages(self, backend: Backend) -> None:
        ids = [backend.create_run("demo", str(i)).id for i in range(5)]
        first = backend.list_runs(limit=2)
        assert len(first.items) == 2 and first.next_cursor is not None
        listed = walk(lambda c: backend.list_runs(limit=2, cursor=c))
        assert [r.id for r in listed] == ids[::-1]
        assert backend.list_runs(limit=5).next_cursor is None

    def test_list_runs_by_status(self, backend: Backend) -> None:
        done = backend.create_run("demo", "quick")
        finished(backend, done.id)
        busy = backend.create_run(slow(30), "busy")
        wait_for(backend, busy.id, lambda r: r.status is RunStatus.RUNNING)
        try:
            assert [r.id for r in backend.list_runs(status=["running"]).items] == [busy.id]
            assert [r.id for r in backend.list_runs(status=["queued,running"]).items] == [busy.id]
            assert [r.id for r in backend.list_runs(status=["succeeded"]).items] == [done.id]
            both = backend.list_runs(status=["succeeded", "running"]).items
            assert {r.id for r in both} == {done.id, busy.id}
            assert backend.list_runs(status=["failed"]).items == []
        finally:
            backend.cancel_run(busy.id)
        finished(backend, busy.id)

    def test_sessions_group_runs(self, backend: Backend) -> None:
        a1 = backend.create_run("demo", "1", session_id="chat-1")
        a2 = backend.create_run("demo", "2", session_id="chat-1")
        backend.create_run("demo", "3", session_id="chat-2")
        backend.create_run("demo", "4")
        in_chat = backend.list_runs(session_id="chat-1").items
        assert [r.id for r in in_chat] == [a2.id, a1.id]
        session = backend.get_session("chat-1")
        assert isinstance(session, Session)
        assert session.id == "chat-1" and session.run_count == 2
        listed = walk(lambda c: backend.list_sessions(limit=1, cursor=c))
        assert sorted(s.id for s in listed) == ["chat-1", "chat-2"]

    # -- cancel ---------------------------------------------------------------------------------
    def test_cancel_a_slow_run_ends_it_quickly(self, backend: Backend) -> None:
        run = backend.create_run(slow(5), "wait")
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        started = time.monotonic()
        answer = backend.cancel_run(run.id)
        assert answer.id == run.id
        assert answer.status is RunStatus.CANCELLED or answer.cancel_requested
        done = finished(backend, run.id, timeout=5)
        assert done.status is RunStatus.CANCELLED
        assert time.monotonic() - started < 2
        assert backend.list_events(run.id)[-1].type == "run.cancelled"
        # Cancelling again (or a finished run) changes nothing.
        assert backend.cancel_run(run.id).status is RunStatus.CANCELLED

    def test_cancel_a_finished_run_returns_it_unchanged(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        done = finished(backend, run.id)
        again = backend.cancel_run(run.id)
        assert again.status is RunStatus.SUCCEEDED and again.output == done.output

    # -- retry and status -----------------------------------------------------------------------
    def test_retry_a_failed_run_queues_it_again_keeping_its_attempts(
        self, backend: Backend
    ) -> None:
        run = backend.create_run(BOOM, "x")
        failed = finished(backend, run.id)
        assert failed.status is RunStatus.FAILED and failed.attempts == 1
        again = backend.retry_run(run.id)
        assert again.id == run.id and again.status is RunStatus.QUEUED
        assert again.error is None and again.finished_at is None and again.attempts == 1
        done = finished(backend, run.id)
        assert done.status is RunStatus.FAILED and done.attempts == 2
        retrying = [e for e in backend.list_events(run.id) if e.type == "run.retrying"]
        assert len(retrying) == 1 and retrying[0].data["attempt"] == 1
        assert retrying[0].data["error"].startswith("retried by ")
        actions = [(e.action, e.target) for e in backend.audit_tail(limit=20)]
        assert ("runs.retry", run.id) in actions

    def test_retry_a_cancelled_run_runs_it_to_the_end(self, backend: Backend) -> None:
        run = backend.create_run(slow(5), "wait")
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        backend.cancel_run(run.id)
        assert finished(backend, run.id).status is RunStatus.CANCELLED
        again = backend.retry_run(run.id)
        assert again.status is RunStatus.QUEUED and not again.cancel_requested
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        backend.cancel_run(run.id)  # five more seconds are not needed to show it started again
        assert finished(backend, run.id).status is RunStatus.CANCELLED

    def test_retry_of_a_succeeded_or_unfinished_run_is_conflict(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        finished(backend, run.id)
        with pytest.raises(Conflict, match="succeeded"):
            backend.retry_run(run.id)
        with pytest.raises(NotFound):
            backend.retry_run("run_00000000000000000000000000")

    def test_bulk_retry_by_status_and_age(self, backend: Backend) -> None:
        runs = [backend.create_run(BOOM, str(i)) for i in range(3)]
        ok = backend.create_run("demo", "fine")
        for r in [*runs, ok]:
            finished(backend, r.id)
        assert backend.retry_runs(["failed"], since="2999-01-01T00:00:00Z") == []
        retried = backend.retry_runs(["failed"], since="1h")
        assert sorted(r.id for r in retried) == sorted(r.id for r in runs)
        assert {r.status for r in retried} == {RunStatus.QUEUED}
        for r in runs:
            assert finished(backend, r.id).attempts == 2
        assert backend.get_run(ok.id).attempts == 1
        with pytest.raises(InvalidInput):
            backend.retry_runs(["succeeded"])
        with pytest.raises(InvalidInput):
            backend.retry_runs(["failed"], since="yesterday-ish")

    def test_status_reports_the_store_and_workers(self, backend: Backend) -> None:
        status = backend.status()
        assert status["store"] == "ok"
        assert status["execution_mode"] in ("inline", "queue")
        workers = status["workers"]
        assert workers["count"] == len(workers["alive"]) and workers["stale"] >= 0

    # -- errors ---------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "run_id", ["run_00000000000000000000000000", "nope", "../..", "..", ".", "a/b",
                   "x/cancel", "%2e%2e", "x" * 3000, "run with spaces"],
    )  # fmt: skip
    def test_unknown_runs_are_not_found(self, backend: Backend, run_id: str) -> None:
        with pytest.raises(NotFound):
            backend.get_run(run_id)
        with pytest.raises(NotFound):
            backend.cancel_run(run_id)
        with pytest.raises(NotFound):
            backend.list_events(run_id)
        with pytest.raises(NotFound):
            list(backend.follow_events(run_id))

    def test_an_unknown_org_is_not_found_everywhere(
        self, backend_in_org: Callable[[str], Backend]
    ) -> None:
        stranger = backend_in_org("no-such-org")
        for call in (
            lambda: stranger.list_runs(),
            lambda: stranger.list_sessions(),
            lambda: stranger.create_run("demo", "x"),
            lambda: stranger.get_run("run_00000000000000000000000000"),
        ):
            with pytest.raises(NotFound, match="no-such-org"):
                call()

    def test_unknown_sessions_are_not_found(self, backend: Backend) -> None:
        for session_id in ("chat-404", "../..", "a/b"):
            with pytest.raises(NotFound):
                backend.get_session(session_id)

    def test_unknown_agent_is_invalid_input_naming_the_known_ones(self, backend: Backend) -> None:
        with pytest.raises(InvalidInput) as info:
            backend.create_run("dmeo", "x")
        assert "dmeo" in str(info.value)
        assert "demo" in (info.value.hint or "")

    @pytest.mark.parametrize(
        "call",
        [
            lambda b: b.create_run({"model": "scripted"}, "no name"),
            lambda b: b.create_run({"name": "x", "model": "scripted", "latency": -1}, "x"),
            lambda b: b.create_run("demo", "x", script=[{"bogus": 1}]),
            lambda b: b.create_run("demo", "x", session_id="not a valid id!"),
            lambda b: b.list_runs(status=["bogus"]),
            lambda b: b.list_runs(status=["queued,bogus"]),
            lambda b: b.list_runs(limit=0),
            lambda b: b.list_runs(cursor="not-a-cursor"),
            lambda b: b.list_sessions(limit=0),
            lambda b: b.list_sessions(cursor="not-a-cursor"),
        ],
        ids=["spec-without-name", "negative-latency", "bad-script", "bad-session-id",
             "unknown-status", "unknown-status-in-list", "limit-0", "bad-cursor",
             "sessions-limit-0", "sessions-bad-cursor"],
    )  # fmt: skip
    def test_bad_input_is_invalid_input(
        self, backend: Backend, call: Callable[[Backend], Any]
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            call(backend)
        assert str(info.value)

    def test_bad_event_paging_is_invalid_input(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        with pytest.raises(InvalidInput):
            backend.list_events(run.id, after=-1)
        with pytest.raises(InvalidInput):
            backend.list_events(run.id, limit=0)
        finished(backend, run.id)

    # -- access control: whoami and orgs --------------------------------------------------------
    def test_whoami_names_the_credential_in_use(self, backend: Backend) -> None:
        me = backend.whoami()
        assert isinstance(me, Principal)
        assert me.subject and me.kind and me.org_id
        # The fixtures act as admins of their org: the local database owner, or a server's
        # bootstrap key.
        assert {"runs:read", "runs:write", "admin:keys", "admin:audit"} <= me.scopes

    def test_create_get_and_list_orgs(self, backend: Backend) -> None:
        org_id = unique("acme")
        org = backend.create_org(org_id, name="Acme Corp")
        assert isinstance(org, Org)
        assert (org.id, org.name) == (org_id, "Acme Corp") and org.created_at
        assert backend.get_org(org_id) == org
        plain = backend.create_org(unique("plain"))
        assert plain.name == plain.id  # the name defaults to the id
        listed = walk(lambda c: backend.list_orgs(limit=2, cursor=c))
        assert all(isinstance(o, Org) for o in listed)
        ids = [o.id for o in listed]
        assert {org_id, plain.id} <= set(ids) and len(ids) == len(set(ids))
        with pytest.raises(Conflict):
            backend.create_org(org_id)

    @pytest.mark.parametrize("org_id", ["no-such-org", "../..", "a/b", "x" * 3000])
    def test_unknown_orgs_are_not_found(self, backend: Backend, org_id: str) -> None:
        with pytest.raises(NotFound):
            backend.get_org(org_id)

    @pytest.mark.parametrize(
        "call",
        [
            lambda b: b.create_org("not valid!"),
            lambda b: b.create_org(""),
            lambda b: b.create_org("x" * 65),
            lambda b: b.create_org(unique("ok"), name="\x1b[31mred"),
            lambda b: b.list_orgs(limit=0),
            lambda b: b.list_orgs(cursor="not-a-cursor"),
        ],
        ids=["bad-id", "empty-id", "long-id", "control-chars-in-name", "limit-0", "bad-cursor"],
    )
    def test_bad_org_input_is_invalid_input(
        self, backend: Backend, call: Callable[[Backend], Any]
    ) -> None:
        with pytest.raises(InvalidInput):
            call(backend)

    # -- access control: API keys ---------------------------------------------------------------
    def test_a_key_from_creation_to_revocation(self, backend: Backend) -> None:
        key, token = backend.create_key(
            name="ci",
            role="operator",
            expires_at="2099-01-31T12:00:00Z",
            rate_per_second=5,
            burst=10,
            ip_allowlist=["10.1.2.3/8", "2001:db8::/32"],
        )
        assert isinstance(key, ApiKey)
        assert token.startswith(key.prefix_display) and token.endswith(key.last4)
        assert key.prefix_display == f"asdk_{key.id}_"
        assert (key.name, key.role) == ("ci", "operator")
        assert set(key.scopes) == {"runs:read", "runs:write", "sessions:read"}
        assert key.expires_at is not None and key.expires_at.startswith("2099-01-31T12:00:00")
        assert (key.rate_per_second, key.burst) == (5, 10)
        assert key.ip_allowlist == ["10.0.0.0/8", "2001:db8::/32"]
        assert key.created_by == backend.whoami().subject
        assert key.revoked_at is None and key.rotated_at is None

        # Listings show the public prefix and the last four characters, never the secret.
        listed = walk(lambda c: backend.list_keys(limit=1, cursor=c))
        assert [k for k in listed if k.id == key.id] == [key]
        secret = token[len(key.prefix_display) :]
        shown = json.dumps([k.to_dict() for k in listed])
        assert secret not in shown and secret[:-4] not in shown
        assert backend.get_key(key.id) == key

        rotated, new_token = backend.rotate_key(key.id, grace_seconds=3600)
        assert rotated.id == key.id and new_token != token
        assert new_token.startswith(key.prefix_display) and new_token.endswith(rotated.last4)
        assert rotated.rotated_at is not None and rotated.revoked_at is None
        assert (rotated.rate_per_second, rotated.ip_allowlist) == (5, key.ip_allowlist)
        assert backend.get_key(key.id) == rotated

        revoked = backend.revoke_key(key.id)
        assert revoked.id == key.id and revoked.revoked_at is not None
        assert backend.get_key(key.id).revoked_at == revoked.revoked_at  # the record remains
        assert backend.revoke_key(key.id).revoked_at == revoked.revoked_at  # revoking again
        with pytest.raises(Conflict):
            backend.rotate_key(key.id)  # a revoked key is never rotated back to life

    def test_explicit_scopes_replace_the_role(self, backend: Backend) -> None:
        key, _ = backend.create_key(name="reader", scopes=["runs:read"])
        assert key.scopes == ["runs:read"] and key.role == "custom"
        same, _ = backend.create_key(name="viewer", role="viewer", scopes=None)
        assert same.role == "viewer" and set(same.scopes) == {"runs:read", "sessions:read"}

    def test_keys_list_newest_first_across_pages(self, backend: Backend) -> None:
        made = [backend.create_key(name=f"k{i}")[0].id for i in range(3)]
        listed = [k.id for k in walk(lambda c: backend.list_keys(limit=2, cursor=c))]
        assert [i for i in listed if i in made] == made[::-1]

    @pytest.mark.parametrize(
        "key_id", ["0000000000000000", "nope", "../..", "..", "a/b", "x/rotate", "x" * 3000]
    )
    def test_unknown_keys_are_not_found(self, backend: Backend, key_id: str) -> None:
        with pytest.raises(NotFound):
            backend.get_key(key_id)
        with pytest.raises(NotFound):
            backend.rotate_key(key_id)
        with pytest.raises(NotFound):
            backend.revoke_key(key_id)

    def test_another_orgs_key_is_not_found(
        self, backend: Backend, backend_in_org: Callable[[str], Backend]
    ) -> None:
        other = unique("other")
        backend.create_org(other)
        theirs, _ = backend_in_org(other).create_key(name="theirs")
        for call in (backend.get_key, backend.rotate_key, backend.revoke_key):
            with pytest.raises(NotFound):
                call(theirs.id)
        assert theirs.id not in [k.id for k in walk(lambda c: backend.list_keys(cursor=c))]
        assert backend_in_org(other).get_key(theirs.id).revoked_at is None  # untouched
        assert all(e.target != theirs.id for e in whole_log(backend))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"role": "god"},
            {"scopes": ["runs:nope"]},
            {"ip_allowlist": ["not-a-network"]},
            {"ip_allowlist": ["10.0.0.0/33"]},
            {"expires_at": "2001-01-01T00:00:00Z"},
            {"expires_at": "next tuesday"},
            {"rate_per_second": 0},
            {"rate_per_second": 1, "burst": 0},
            {"name": ""},
            {"name": "line\nbreak"},
        ],
        ids=["role", "scope", "cidr", "cidr-prefix", "expired", "bad-time", "rate-0", "burst-0",
             "empty-name", "control-char-name"],
    )  # fmt: skip
    def test_bad_key_input_is_invalid_input(self, backend: Backend, kwargs: dict[str, Any]) -> None:
        arguments: dict[str, Any] = {"name": "k", **kwargs}
        with pytest.raises(InvalidInput):
            backend.create_key(**arguments)

    def test_bad_key_paging_and_grace_are_invalid_input(self, backend: Backend) -> None:
        key, _ = backend.create_key(name="k")
        for call in (
            lambda: backend.list_keys(limit=0),
            lambda: backend.list_keys(cursor="not-a-cursor"),
            lambda: backend.rotate_key(key.id, grace_seconds=-1),
        ):
            with pytest.raises(InvalidInput):
                call()
        assert backend.get_key(key.id).rotated_at is None

    # -- access control: the audit log ----------------------------------------------------------
    def test_audit_tail_shows_each_admin_action_with_its_actor(self, backend: Backend) -> None:
        me = backend.whoami()
        key, _ = backend.create_key(name="audited")
        backend.rotate_key(key.id)
        backend.revoke_key(key.id)
        tail = backend.audit_tail(limit=3)
        assert all(isinstance(e, AuditEntry) for e in tail)
        assert [(e.action, e.target, e.actor, e.actor_kind, e.outcome) for e in tail] == [
            (action, key.id, me.subject, me.kind, "success")
            for action in ("keys.create", "keys.rotate", "keys.revoke")
        ]
        first = tail[0].seq
        assert [e.seq for e in tail] == [first, first + 1, first + 2]
        assert backend.audit_tail(after=first, limit=10) == tail[1:]
        assert backend.audit_tail(after=first, limit=1) == tail[1:2]
        assert backend.audit_tail(after=first + 2) == []

    def test_runs_are_audited_too(self, backend: Backend) -> None:
        run = backend.create_run("demo", "x")
        finished(backend, run.id)
        actions = [(e.action, e.target) for e in backend.audit_tail(limit=10)]
        assert ("runs.create", run.id) in actions

    def test_audit_export_parses_back_in_both_formats(self, backend: Backend) -> None:
        key, token = backend.create_key(name="exported")
        backend.rotate_key(key.id)
        log = whole_log(backend)
        lines = list(backend.audit_export(format="jsonl"))
        assert lines and all(line.endswith("\n") for line in lines)
        assert list(read_jsonl(lines)) == log
        rows = list(backend.audit_export(format="csv"))
        assert list(read_csv(rows)) == log
        parsed = list(csv.reader(rows))
        assert parsed[0] == CSV_COLUMNS and len(parsed) == len(log) + 1
        everything = "".join(lines + rows)
        assert token not in everything and token[len(key.prefix_display) :] not in everything
        since = list(read_jsonl(backend.audit_export(format="jsonl", since=log[-1].time)))
        assert since == [e for e in log if e.time >= log[-1].time]

    def test_a_bad_export_format_is_invalid_input_at_once(self, backend: Backend) -> None:
        with pytest.raises(InvalidInput):
            backend.audit_export(format="xml")  # before any line is asked for

    def test_audit_verify(self, backend: Backend) -> None:
        backend.create_key(name="verified")
        log = whole_log(backend)
        report = backend.audit_verify()
        assert isinstance(report, VerifyReport)
        assert report.org_id == log[-1].org_id
        if log[-1].hash is not None:
            assert report.ok, report.reason
            assert (report.count, report.first_bad_seq, report.reason) == (len(log), None, None)
            assert report.head_hash == log[-1].hash
        else:  # a server running without AGENT_SDK_AUDIT_HASH_CHAIN: nothing to verify
            assert not report.ok and report.unchained == len(log)
            assert "AGENT_SDK_AUDIT_HASH_CHAIN" in (report.reason or "")
