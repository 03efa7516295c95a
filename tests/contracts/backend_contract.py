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
from agent_sdk.records import (
    ApiKey,
    AuditEntry,
    Checkpoint,
    Deletion,
    Event,
    Org,
    Page,
    Principal,
    Run,
    RunStatus,
    Session,
    VerifyReport,
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
        # At or past the end of a finished run there is nothing to wait for.
        assert list(backend.follow_events(run.id, after=len(followed))) == []
        assert list(backend.follow_events(run.id, after=len(followed) + 10)) == []

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
        run = backend.create_run(slow(30), "wait")
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        started = time.monotonic()
        answer = backend.cancel_run(run.id)
        assert answer.id == run.id
        assert answer.status is RunStatus.CANCELLED or answer.cancel_requested
        done = finished(backend, run.id, timeout=20)
        assert done.status is RunStatus.CANCELLED
        assert time.monotonic() - started < 10  # stopped, not its 30 s wait waited out
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

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"input": "a\udcff"}, "input"),  # an argument that is not UTF-8, as Python reads it
            ({"input": "a\x00b"}, "input"),
            ({"metadata": {"k": ["ok", "\ud800"]}}, "metadata.k.1"),
            ({"metadata": {"\x00": "v"}}, "metadata.\x00"),
        ],
    )
    def test_text_no_store_can_hold_is_invalid_input_naming_the_field(
        self, backend: Backend, kwargs: dict[str, Any], field: str
    ) -> None:
        # Both backends refuse it before anything is stored; the HTTP one gets the server's
        # answer, as the text still travels (escaped) in the JSON body.
        call = {"input": "x", **kwargs}
        with pytest.raises(InvalidInput, match="cannot be stored") as info:
            backend.create_run("demo", call.pop("input"), **call)
        assert field in str(info.value), info.value
        assert backend.list_runs().items == []

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

    def test_audit_checkpoints_and_verify_against_a_key_and_an_anchor(
        self, backend: Backend, tmp_path: Any
    ) -> None:
        from agent_sdk.canonical import checkpoint_payload
        from agent_sdk.governance.audit_signing import CheckpointSigner

        backend.create_key(name="anchored")
        log = whole_log(backend)
        stored = list(backend.audit_checkpoints())
        assert all(isinstance(cp, Checkpoint) for cp in stored)
        assert [cp.seq for cp in stored] == sorted({cp.seq for cp in stored})
        assert list(backend.audit_checkpoints(after=log[-1].seq)) == []
        # A key nobody signed with: an anchor signed by it is checked against the log, the
        # same way on every backend. Its checkpoint claims more records than the log has.
        other = CheckpointSigner.load(tmp_path / "other.key")
        end = log[-1].seq
        unsigned = {"org_id": log[-1].org_id, "seq": end + 5, "head_hash": "ab", "time": "t"}
        forged = Checkpoint(**unsigned, signature=other.sign(checkpoint_payload(unsigned)),
                            key_id=other.key_id)  # fmt: skip
        report = backend.audit_verify(anchor=[forged], public_key=other.public_key_pem())
        assert not report.ok
        if stored:  # the log's own checkpoints are not signed by that key
            assert "not the verifying key" in str(report.reason)
        else:
            assert report.first_bad_seq == end + 1 and "deleted from the tail" in str(report.reason)
        with pytest.raises(InvalidInput, match="public key"):
            backend.audit_verify(anchor=[])
        with pytest.raises(InvalidInput):
            backend.audit_verify(public_key="-----BEGIN PUBLIC KEY-----\nnope\n")
        with pytest.raises(InvalidInput):
            list(backend.audit_checkpoints(after=-1))

    # -- data residency (the backends' servers serve every region) ------------------------------
    def test_residency_pins_and_unpins_the_org_with_audit_records(self, backend: Backend) -> None:
        first = backend.get_residency()
        assert (first.region, first.served_here) == (None, True)
        pinned = backend.set_residency("eu-west-1")
        assert (pinned.org_id, pinned.region) == (first.org_id, "eu-west-1")
        assert backend.get_residency() == pinned
        assert backend.set_residency("us").region == "us"
        assert backend.set_residency(None).region is None
        assert backend.get_residency() == first
        trail = [(e.action, e.details) for e in whole_log(backend) if "residency" in e.action]
        assert trail == [
            ("residency.set", {"region": "eu-west-1", "previous": None}),
            ("residency.set", {"region": "us", "previous": "eu-west-1"}),
            ("residency.clear", {"region": None, "previous": "us"}),
        ]

    @pytest.mark.parametrize("region", ["EU", "eu_west", "-eu", "eu-", "a" * 33, "", "eu\n", "é"])
    def test_bad_regions_are_invalid_input(self, backend: Backend, region: str) -> None:
        backend.set_residency("eu")
        with pytest.raises(InvalidInput):
            backend.set_residency(region)
        assert backend.get_residency().region == "eu"

    def test_residency_of_an_unknown_org_is_not_found(
        self, backend_in_org: Callable[[str], Backend]
    ) -> None:
        nobody = backend_in_org(f"nobody-{uuid.uuid4().hex[:8]}")
        with pytest.raises(NotFound):
            nobody.get_residency()
        with pytest.raises(NotFound):
            nobody.set_residency("eu")

    # -- erasure --------------------------------------------------------------------------------
    def test_delete_run_erases_it_from_every_read_and_audits_no_content(
        self, backend: Backend
    ) -> None:
        canary = f"canary-{uuid.uuid4().hex}"
        session, key = unique("s"), unique("k")
        run = backend.create_run(
            steps(2), f"input {canary}", session_id=session, idempotency_key=key
        )
        finished(backend, run.id)
        events = backend.list_events(run.id)
        assert any(e.type == "tool.result" for e in events)

        deletion = backend.delete_run(run.id)

        assert isinstance(deletion, Deletion)
        assert deletion.to_dict() == {
            "kind": "run",
            "id": run.id,
            "org_id": run.org_id,
            "runs": 1,
            "events": len(events),
            "idempotency_keys": 1,
            "sessions": 0,
        }
        for call in (
            backend.get_run,
            backend.list_events,
            lambda i: list(backend.follow_events(i)),
            backend.cancel_run,
            backend.retry_run,
            backend.delete_run,
        ):
            with pytest.raises(NotFound):
                call(run.id)
        assert run.id not in [r.id for r in walk(lambda c: backend.list_runs(cursor=c))]
        assert backend.get_session(session).run_count == 0
        log = whole_log(backend)
        [record] = [e for e in log if e.action == "runs.delete"]
        assert (record.target, record.outcome) == (run.id, "success")
        assert record.details == {
            "runs": 1,
            "events": len(events),
            "idempotency_keys": 1,
            "sessions": 0,
            "was": "succeeded",
        }
        assert canary not in json.dumps([e.to_dict() for e in log])
        if log[-1].hash is not None:
            assert backend.audit_verify().ok  # erasure leaves the audit chain intact
        # The claim went with the run: the same key and request now make a new run.
        again = backend.create_run(
            steps(2), f"input {canary}", session_id=session, idempotency_key=key
        )
        assert again.id != run.id
        finished(backend, again.id)

    def test_delete_session_erases_all_of_its_runs(self, backend: Backend) -> None:
        session, keep = unique("chat"), unique("keep")
        ids = [backend.create_run("demo", str(i), session_id=session).id for i in range(6)]
        other = backend.create_run("demo", "stays", session_id=keep)
        for run_id in [*ids, other.id]:
            finished(backend, run_id)

        deletion = backend.delete_session(session)

        assert (deletion.kind, deletion.id, deletion.runs, deletion.sessions) == (
            "session",
            session,
            6,
            1,
        )
        assert deletion.events >= 6 * 3  # created, started, ..., succeeded per run
        with pytest.raises(NotFound):
            backend.get_session(session)
        for run_id in ids:
            with pytest.raises(NotFound):
                backend.get_run(run_id)
        assert backend.list_runs(session_id=session).items == []
        assert backend.get_run(other.id).status is RunStatus.SUCCEEDED
        assert backend.get_session(keep).run_count == 1
        with pytest.raises(NotFound):
            backend.delete_session(session)
        [record] = [e for e in whole_log(backend) if e.action == "sessions.delete"]
        assert record.target == session and record.details["runs"] == 6

    def test_another_orgs_runs_and_sessions_cannot_be_deleted(
        self, backend: Backend, backend_in_org: Callable[[str], Backend]
    ) -> None:
        other = unique("other")
        backend.create_org(other)
        them = backend_in_org(other)
        shared = unique("shared")  # the same session id in both orgs: two sessions
        theirs = them.create_run("demo", "theirs", session_id=shared)
        mine = backend.create_run("demo", "mine", session_id=shared)
        finished(them, theirs.id)
        finished(backend, mine.id)
        with pytest.raises(NotFound) as foreign:
            backend.delete_run(theirs.id)
        with pytest.raises(NotFound) as unknown:
            backend.delete_run("run_00000000000000000000000000")
        assert str(foreign.value).replace(theirs.id, "<id>") == str(unknown.value).replace(
            "run_00000000000000000000000000", "<id>"
        )
        assert backend.delete_session(shared).runs == 1  # only its own run
        assert them.get_run(theirs.id).input == "theirs"
        assert them.get_session(shared).run_count == 1
        assert all(e.target != theirs.id for e in whole_log(backend))

    @pytest.mark.parametrize(
        "odd_id", ["run_00000000000000000000000000", "../..", "..", ".", "a/b", "x/cancel",
                   "%2e%2e", "x" * 3000, "run with spaces", "run_%", "*"],
    )  # fmt: skip
    def test_deleting_unknown_ids_is_not_found(self, backend: Backend, odd_id: str) -> None:
        run = backend.create_run("demo", "stays", session_id=unique("s"))
        with pytest.raises(NotFound):
            backend.delete_run(odd_id)
        with pytest.raises(NotFound):
            backend.delete_session(odd_id)
        assert backend.get_run(run.id).id == run.id

    def test_a_running_run_is_deleted_and_stays_deleted(self, backend: Backend) -> None:
        run = backend.create_run(slow(3), "long")
        wait_for(backend, run.id, lambda r: r.status is RunStatus.RUNNING)
        assert backend.delete_run(run.id).runs == 1
        time.sleep(0.5)  # the attempt notices; nothing it does may bring the run back
        with pytest.raises(NotFound):
            backend.get_run(run.id)
        with pytest.raises(NotFound):
            backend.list_events(run.id)
        assert run.id not in [r.id for r in backend.list_runs().items]

    # -- PII redaction policies (managing them does not need redaction on) ------------------------
    def test_a_redaction_policy_from_defaults_to_custom_and_back(self, backend: Backend) -> None:
        first = backend.get_redaction()
        assert (first.policy.disabled, first.policy.patterns) == ((), ())
        assert all(d["enabled"] for d in first.to_dict()["detectors"])
        view = backend.set_redaction(
            {"disabled": ["ip"], "patterns": [{"name": "emp", "regex": r"EMP-\d{6}"}]}
        )
        assert view.org_id == first.org_id and view.policy.disabled == ("ip",)
        assert backend.get_redaction() == view
        view = backend.set_redaction_pattern("ticket", r"TCK-\d{5}", "[TICKET]")
        assert [(p.name, p.placeholder) for p in view.policy.patterns] == [
            ("emp", "[EMP]"),
            ("ticket", "[TICKET]"),
        ]
        sample = backend.preview_redaction("EMP-123456 TCK-12345 a@b.io 10.0.0.1")
        assert sample.redacted == "[EMP] [TICKET] [EMAIL] 10.0.0.1"
        assert sample.findings == {"emp": 1, "ticket": 1, "email": 1}
        assert backend.delete_redaction_pattern("emp").policy.patterns[0].name == "ticket"
        assert backend.reset_redaction().policy == first.policy
        trail = [e.action for e in whole_log(backend) if e.action.startswith("redaction.")]
        assert trail == [
            "redaction.set",
            "redaction.pattern.set",
            "redaction.pattern.delete",
            "redaction.reset",
        ]

    @pytest.mark.parametrize(
        "policy",
        [{"disabled": ["nope"]}, {"patterns": [{"name": "emp", "regex": "("}]},
         {"patterns": [{"name": "emp", "regex": r"\d+"}]},
         {"patterns": [{"name": "emp", "regex": "x" * 600}]},
         {"patterns": [{"name": "Emp", "regex": "x"}]},
         {"patterns": [{"name": "emp", "regex": "x", "placeholder": "x"}]}],
        ids=["detector", "syntax", "unbounded", "long", "name", "placeholder"],
    )  # fmt: skip
    def test_bad_redaction_policies_are_invalid_input(
        self, backend: Backend, policy: dict[str, Any]
    ) -> None:
        backend.set_redaction_pattern("keep", r"KEEP-\d{3}")
        with pytest.raises(InvalidInput):
            backend.set_redaction(policy)
        assert [p.name for p in backend.get_redaction().policy.patterns] == ["keep"]

    def test_another_orgs_redaction_pattern_is_not_found(
        self, backend: Backend, backend_in_org: Callable[[str], Backend]
    ) -> None:
        other = unique("other")
        backend.create_org(other)
        backend_in_org(other).set_redaction_pattern("theirs", r"THEIRS-\d{3}")
        for name in ("theirs", "../theirs", "nope"):
            with pytest.raises(NotFound):
                backend.delete_redaction_pattern(name)
        assert backend.get_redaction().policy.patterns == ()
        assert backend_in_org(other).get_redaction().policy.patterns[0].name == "theirs"
        nobody = backend_in_org(f"nobody-{uuid.uuid4().hex[:8]}")
        with pytest.raises(NotFound):
            nobody.get_redaction()

    # -- encryption at rest (off in the contract's deployments) ---------------------------------
    def test_encryption_keys_when_encryption_at_rest_is_off(
        self, backend: Backend, backend_in_org: Callable[[str], Backend]
    ) -> None:
        assert backend.list_encryption_keys() == []
        for change in (backend.rotate_encryption_key, backend.rewrap_encryption):
            with pytest.raises(Conflict, match="not enabled"):
                change()
        assert backend.destroy_encryption_keys() == []  # shredding never needs the master key
        actions = [e.action for e in whole_log(backend)]
        assert "encryption_keys.destroy" in actions
        nobody = backend_in_org(f"nobody-{uuid.uuid4().hex[:8]}")
        with pytest.raises(NotFound):
            nobody.list_encryption_keys()

    # -- retention ------------------------------------------------------------------------------
    def test_a_retention_policy_from_set_to_clear_with_audit_records(
        self, backend: Backend
    ) -> None:
        empty = backend.get_retention()
        assert not empty.policy and empty.org_id
        limits = {"runs_days": 90, "events_days": 30, "audit_days": None}
        view = backend.set_retention(limits)
        assert view.to_dict() == empty.to_dict() | limits
        assert backend.get_retention() == view
        # The whole policy is replaced: what is left out is removed.
        assert backend.set_retention({"keep_last_runs_per_session": 3}).policy.runs_days is None
        assert not backend.clear_retention().policy and not backend.get_retention().policy
        trail = [(e.action, e.details.get("runs_days")) for e in whole_log(backend)]
        trail = [t for t in trail if t[0].startswith("retention.")]
        assert trail == [("retention.set", 90), ("retention.set", None), ("retention.clear", None)]

    @pytest.mark.parametrize(
        "policy",
        [
            {"runs_days": 0},
            {"runs_days": "30"},
            {"events_days": 36_501},
            {"keep_last_runs_per_session": 10_001},
            {"audit_days": True},
            {"runs_dayz": 30},
        ],
    )
    def test_bad_retention_policies_are_invalid_input(
        self, backend: Backend, policy: dict[str, Any]
    ) -> None:
        backend.set_retention({"runs_days": 7})
        with pytest.raises(InvalidInput):
            backend.set_retention(policy)
        assert backend.get_retention().policy.runs_days == 7

    def test_keep_last_runs_hides_older_runs_and_a_sweep_deletes_them(
        self, backend: Backend, backend_in_org: Callable[[str], Backend]
    ) -> None:
        other_org = unique("other")
        backend.create_org(other_org)
        other = backend_in_org(other_org)
        session = unique("s")
        mine = [finished(backend, backend.create_run("demo", f"{i}", session_id=session).id)
                for i in range(3)]  # fmt: skip
        theirs = [finished(other, other.create_run("demo", f"{i}", session_id=session).id)
                  for i in range(2)]  # fmt: skip
        backend.set_retention({"keep_last_runs_per_session": 1})
        assert [r.id for r in backend.list_runs(session_id=session).items] == [mine[-1].id]
        assert backend.get_session(session).id == session
        for old in mine[:2]:
            with pytest.raises(NotFound):
                backend.get_run(old.id)
            with pytest.raises(NotFound):
                backend.list_events(old.id)
        dry = backend.retention_sweep(dry_run=True)
        assert dry.dry_run and [(o.runs, o.error) for o in dry.orgs] == [(2, None)]
        done = backend.retention_sweep()
        assert [(o.runs, o.error) for o in done.orgs] == [(2, None)]
        assert done.orgs[0].events > 0 and not done.dry_run
        assert backend.retention_sweep().orgs[0].runs == 0
        assert [r.id for r in other.list_runs(session_id=session).items] == [
            r.id for r in reversed(theirs)
        ]
        receipt = [e for e in whole_log(backend) if e.action == "retention.sweep"]
        assert len(receipt) == 1 and receipt[0].details["runs"] == 2

    def test_retention_of_an_unknown_org_is_not_found(
        self, backend_in_org: Callable[[str], Backend]
    ) -> None:
        nobody = backend_in_org(f"nobody-{uuid.uuid4().hex[:8]}")
        with pytest.raises(NotFound):
            nobody.get_retention()
        with pytest.raises(NotFound):
            nobody.set_retention({"runs_days": 1})
        with pytest.raises(NotFound):
            nobody.retention_sweep()
