"""The Store contract: what every Store (SQLite today, Postgres later) must do.

Use it by subclassing with a ``store`` fixture that yields a fresh, migrated store::

    class TestSQLiteStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

Tests here use only the Store protocol, never a backend's internals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent_sdk.errors import Conflict, InvalidInput, NotFound, Superseded
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Deletion, Event, EventType, Run, RunStatus
from agent_sdk.store.base import Store

ORG = "default"
OTHER = "org_other"
HOSTILE = [
    'it\'s "quoted"',
    "'; DROP TABLE runs; --",
    "Robert'); DELETE FROM events WHERE ('1'='1",
    "ünïcödé — 日本語 — 🤖 — عربى",
    "back\\slash and %s %% ? :name $1",
    "line\nbreak\ttab\r",  # no NUL: PostgreSQL text cannot hold one
]


def make_run(store: Store, org_id: str = ORG, **fields: Any) -> Run:
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id("run"),
        "org_id": org_id,
        "agent": "echo",
        "status": RunStatus.QUEUED,
        "input": "hello",
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return store.insert_run(Run(**values))


def walk(list_page: Callable[[str | None], Any]) -> list[Any]:
    """Every item of a paginated listing, following cursors; fails on a loop."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):
        page = list_page(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
        assert page.items, "a page with a next cursor must not be empty"
    raise AssertionError("pagination did not end")


def not_found_message(fn: Callable[[str], object], key: str) -> str:
    """The NotFound message of ``fn(key)``, with ``key`` blanked out for comparison."""
    with pytest.raises(NotFound) as info:
        fn(key)
    return info.value.message.replace(key, "<key>")


class StoreContract:
    """Mixin of contract tests; the subclass provides the ``store`` fixture."""

    # -- orgs and meta --------------------------------------------------------------------------
    def test_default_org_exists_after_migrate(self, store: Store) -> None:
        org = store.get_org(ORG)
        assert (org.id, org.name) == (ORG, "Default")

    def test_prune_events_keeps_the_newest(self, store: Store) -> None:
        store.ensure_org(OTHER)
        run = make_run(store)
        for i in range(10):
            store.append_event(ORG, run.id, "tool.result", {"i": i})
        assert store.prune_events(ORG, run.id, keep=3) == 7
        assert [e.seq for e in store.list_events(ORG, run.id)] == [8, 9, 10]
        assert [e.seq for e in store.list_events(ORG, run.id, after=2)] == [8, 9, 10]
        assert store.append_event(ORG, run.id, "x", {}).seq == 11  # never reused
        with pytest.raises(NotFound):
            store.prune_events(OTHER, run.id, keep=1)

    def test_create_and_list_orgs(self, store: Store) -> None:
        made = [store.create_org(f"org-{i:02d}", f"Org {i}") for i in range(5)]
        assert made[0].name == "Org 0" and store.get_org("org-00") == made[0]
        with pytest.raises(Conflict, match="already exists"):
            store.create_org("org-00", "again")
        seen = walk(lambda c: store.list_orgs(limit=2, cursor=c))
        ids = [o.id for o in seen]
        assert ids == sorted(ids) and {o.id for o in made} <= set(ids) and "default" in ids

    def test_ensure_org_is_idempotent_and_keeps_the_first_name(self, store: Store) -> None:
        first = store.ensure_org(OTHER, "Other Inc")
        again = store.ensure_org(OTHER, "Renamed")
        assert again == first
        assert store.get_org(OTHER).name == "Other Inc"
        with pytest.raises(NotFound):
            store.get_org("no-such-org")

    def test_org_settings_are_per_org_and_round_trip_json(self, store: Store) -> None:
        store.ensure_org(OTHER, "Other Inc")
        assert store.get_org_setting(ORG, "retention") is None
        policy = {"runs_days": 30, "note": "ünï 🤖 '; DROP TABLE org_settings; --", "n": [1.5]}
        store.set_org_setting(ORG, "retention", policy)
        assert store.get_org_setting(ORG, "retention") == policy
        assert store.get_org_setting(OTHER, "retention") is None  # never another org's
        store.set_org_setting(OTHER, "retention", {"runs_days": 7})
        store.set_org_setting(ORG, "retention", {"runs_days": 1})  # replaces
        store.set_org_setting(ORG, "region", "eu")
        assert store.list_org_settings("retention") == sorted(
            [(ORG, {"runs_days": 1}), (OTHER, {"runs_days": 7})]
        )
        store.set_org_setting(ORG, "retention", None)  # removes
        assert store.get_org_setting(ORG, "retention") is None
        assert store.list_org_settings("retention") == [(OTHER, {"runs_days": 7})]
        assert store.get_org_setting(ORG, "region") == "eu"
        with pytest.raises(NotFound):
            store.set_org_setting("no-such-org", "region", "eu")

    def test_meta_only_if_absent_keeps_the_first_value(self, store: Store) -> None:
        assert store.get_meta("instance") is None
        assert store.set_meta("instance", "a", only_if_absent=True) is True
        assert store.set_meta("instance", "b", only_if_absent=True) is False
        assert store.get_meta("instance") == "a"
        assert store.set_meta("instance", "c") is True
        assert store.get_meta("instance") == "c"

    def test_migrate_is_idempotent(self, store: Store) -> None:
        assert store.migrate() == []
        states = store.migration_status()
        assert states and all(s.applied_at is not None for s in states)
        assert [s.version for s in states] == sorted(s.version for s in states)
        store.check()

    # -- runs -----------------------------------------------------------------------------------
    def test_run_round_trips_every_field(self, store: Store) -> None:
        run = make_run(
            store,
            session_id="ses-1",
            project_id="default",
            status=RunStatus.RUNNING,
            output="out",
            error={"code": "x", "nested": {"a": [1, 2.5, None, True]}},
            usage={"input_tokens": 3, "output_tokens": 4},
            steps=2,
            attempts=1,
            metadata={"k": "v"},
            agent_spec={"model": "scripted:x", "tools": ["fs.read"]},
            started_at=utcnow(),
            cancel_requested=True,
        )
        got = store.get_run(ORG, run.id)
        assert got == run
        assert isinstance(got.status, RunStatus)
        assert got.cancel_requested is True

    def test_insert_duplicate_run_is_a_conflict(self, store: Store) -> None:
        run = make_run(store)
        with pytest.raises(Conflict):
            store.insert_run(run)

    def test_insert_run_into_unknown_org_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            make_run(store, org_id="no-such-org")

    def test_another_orgs_run_is_not_found_like_an_unknown_one(self, store: Store) -> None:
        store.ensure_org(OTHER)
        theirs = make_run(store, org_id=OTHER)
        unknown = new_id("run")
        calls: list[Callable[[str], object]] = [
            lambda rid: store.get_run(ORG, rid),
            lambda rid: store.update_run(ORG, rid, steps=1),
            lambda rid: store.update_run(ORG, rid, expect_status=[RunStatus.QUEUED], steps=1),
            lambda rid: store.append_event(ORG, rid, "x", {}),
            lambda rid: store.list_events(ORG, rid),
            lambda rid: list(store.iter_events(ORG, rid)),
        ]
        for call in calls:
            other = not_found_message(call, theirs.id)
            assert other == not_found_message(call, unknown)
            assert OTHER not in other
        # Nothing was changed in the owner's org.
        assert store.get_run(OTHER, theirs.id) == theirs
        assert store.list_events(OTHER, theirs.id) == []

    def test_list_runs_walks_every_page_newest_first(self, store: Store) -> None:
        ids = [make_run(store).id for _ in range(23)]
        seen = walk(lambda c: store.list_runs(ORG, limit=5, cursor=c))
        assert [r.id for r in seen] == ids[::-1]

    def test_last_full_page_has_no_cursor(self, store: Store) -> None:
        for _ in range(10):
            make_run(store)
        first = store.list_runs(ORG, limit=5)
        assert first.next_cursor is not None
        second = store.list_runs(ORG, limit=5, cursor=first.next_cursor)
        assert len(second.items) == 5 and second.next_cursor is None

    def test_list_runs_sees_only_its_org(self, store: Store) -> None:
        store.ensure_org(OTHER)
        mine = {make_run(store).id for _ in range(3)}
        theirs = {make_run(store, org_id=OTHER).id for _ in range(4)}
        assert {r.id for r in store.list_runs(ORG).items} == mine
        assert {r.id for r in store.list_runs(OTHER).items} == theirs

    def test_list_runs_filters_by_status(self, store: Store) -> None:
        by_status: dict[RunStatus, list[str]] = {s: [] for s in RunStatus}
        for i in range(30):
            status = list(RunStatus)[i % 3]
            by_status[status].append(make_run(store, status=status).id)
        queued = walk(lambda c: store.list_runs(ORG, status=[RunStatus.QUEUED], limit=4, cursor=c))
        assert [r.id for r in queued] == by_status[RunStatus.QUEUED][::-1]
        both = [RunStatus.QUEUED, RunStatus.SUCCEEDED]
        got = walk(lambda c: store.list_runs(ORG, status=both, limit=4, cursor=c))
        want = sorted(by_status[RunStatus.QUEUED] + by_status[RunStatus.SUCCEEDED], reverse=True)
        assert [r.id for r in got] == want
        assert store.list_runs(ORG, status=[RunStatus.CANCELLED]).items == []

    def test_list_runs_filters_by_session(self, store: Store) -> None:
        a = [make_run(store, session_id="a").id for _ in range(7)]
        make_run(store, session_id="b")
        make_run(store)
        got = walk(lambda c: store.list_runs(ORG, session_id="a", limit=3, cursor=c))
        assert [r.id for r in got] == a[::-1]
        store.update_run(ORG, a[0], status=RunStatus.FAILED)
        failed = store.list_runs(ORG, session_id="a", status=[RunStatus.FAILED, RunStatus.RUNNING])
        assert [r.id for r in failed.items] == [a[0]]

    def test_limit_below_one_is_invalid_and_large_limits_are_clamped(self, store: Store) -> None:
        make_run(store)
        for bad in (0, -1):
            with pytest.raises(InvalidInput):
                store.list_runs(ORG, limit=bad)
            with pytest.raises(InvalidInput):
                store.list_sessions(ORG, limit=bad)
        assert len(store.list_runs(ORG, limit=10**9).items) == 1

    @pytest.mark.parametrize(
        "cursor", ["", "not-a-cursor", "!!!!", "eyJ2IjoxfQ", "e30", "bnVsbA", "a" * 500]
    )
    def test_malformed_cursor_is_invalid_input(self, store: Store, cursor: str) -> None:
        with pytest.raises(InvalidInput, match="invalid cursor"):
            store.list_runs(ORG, cursor=cursor)
        with pytest.raises(InvalidInput, match="invalid cursor"):
            store.list_sessions(ORG, cursor=cursor)

    def test_cursor_of_one_listing_is_rejected_by_another(self, store: Store) -> None:
        for i in range(3):
            store.create_session(ORG, f"s{i}")
            make_run(store)
        runs_cursor = store.list_runs(ORG, limit=1).next_cursor
        sessions_cursor = store.list_sessions(ORG, limit=1).next_cursor
        assert runs_cursor and sessions_cursor
        with pytest.raises(InvalidInput):
            store.list_runs(ORG, cursor=sessions_cursor)
        with pytest.raises(InvalidInput):
            store.list_sessions(ORG, cursor=runs_cursor)

    # -- update_run -----------------------------------------------------------------------------
    def test_update_run_sets_fields_and_updated_at(self, store: Store) -> None:
        run = make_run(store, updated_at="2000-01-01T00:00:00.000000Z")
        done = store.update_run(
            ORG,
            run.id,
            status=RunStatus.SUCCEEDED,
            output="done",
            error={"code": "none"},
            usage={"input_tokens": 1, "output_tokens": 2},
            steps=3,
            attempts=1,
            started_at="2026-01-01T00:00:00.000000Z",
            finished_at="2026-01-01T00:00:01.000000Z",
            cancel_requested=True,
        )
        assert done is not None
        assert done == store.get_run(ORG, run.id)
        assert done.status is RunStatus.SUCCEEDED and done.output == "done"
        assert done.error == {"code": "none"} and done.usage["output_tokens"] == 2
        assert (done.steps, done.attempts, done.cancel_requested) == (3, 1, True)
        assert done.updated_at > run.updated_at
        assert (done.input, done.created_at, done.agent) == (run.input, run.created_at, run.agent)

    def test_update_run_rejects_unknown_fields_and_statuses(self, store: Store) -> None:
        run = make_run(store)
        bad: list[dict[str, Any]] = [{"agent": "x"}, {"id": "x"}, {"input": "x"}, {"status": "?"}]
        for fields in bad:
            with pytest.raises(InvalidInput):
                store.update_run(ORG, run.id, **fields)
        assert store.get_run(ORG, run.id) == run

    def test_update_run_compare_and_set(self, store: Store) -> None:
        run = make_run(store)
        started = store.update_run(
            ORG, run.id, expect_status=[RunStatus.QUEUED], status=RunStatus.RUNNING
        )
        assert started is not None and started.status is RunStatus.RUNNING
        again = store.update_run(
            ORG, run.id, expect_status=[RunStatus.QUEUED], status=RunStatus.CANCELLED
        )
        assert again is None
        assert store.get_run(ORG, run.id).status is RunStatus.RUNNING
        assert store.update_run(ORG, run.id, expect_status=[], steps=9) is None
        finished = store.update_run(
            ORG,
            run.id,
            expect_status=[RunStatus.QUEUED, RunStatus.RUNNING],
            status=RunStatus.SUCCEEDED,
        )
        assert (
            finished is not None and finished.status is RunStatus.SUCCEEDED and finished.steps == 0
        )

    def test_update_run_fenced_by_attempt(self, store: Store) -> None:
        """A superseded attempt (another worker took the run over) can no longer write."""
        run = make_run(store)
        first = store.update_run(ORG, run.id, expect_attempts=0, attempts=1)
        assert first is not None and first.attempts == 1
        taken = store.update_run(ORG, run.id, expect_attempts=1, attempts=2)
        assert taken is not None and taken.attempts == 2
        assert store.update_run(ORG, run.id, expect_attempts=1, steps=5) is None
        both = store.update_run(
            ORG, run.id, expect_status=[RunStatus.RUNNING], expect_attempts=2, steps=5
        )
        assert both is None  # the status does not match, whatever the attempt
        mine = store.update_run(ORG, run.id, expect_status=[RunStatus.QUEUED], expect_attempts=2)
        assert mine is not None and mine.steps == 0 and mine.attempts == 2
        with pytest.raises(NotFound):
            store.update_run(ORG, "run_nope", expect_attempts=1, steps=1)

    def test_watch_runs_beats_only_the_current_attempt_of_running_runs(self, store: Store) -> None:
        old = "2000-01-01T00:00:00.000000Z"
        mine = make_run(store, status=RunStatus.RUNNING, attempts=1, updated_at=old)
        taken = make_run(store, status=RunStatus.RUNNING, attempts=2, updated_at=old)
        ended = make_run(store, status=RunStatus.SUCCEEDED, attempts=1, updated_at=old)
        asked = make_run(store, status=RunStatus.RUNNING, attempts=1, updated_at=old)
        store.update_run(ORG, asked.id, cancel_requested=True)
        gone = make_run(store, status=RunStatus.RUNNING, attempts=1)
        store.delete_run(ORG, gone.id)
        keys = [(ORG, r.id, 1) for r in (mine, taken, ended, asked, gone)]
        seen = store.watch_runs(keys)  # a look alone writes nothing
        assert store.get_run(ORG, mine.id).updated_at == old
        assert seen == {
            (ORG, mine.id): (1, False),
            (ORG, taken.id): (2, False),
            (ORG, ended.id): (1, False),
            (ORG, asked.id): (1, True),
        }
        assert store.watch_runs(keys, touch=True) == seen
        assert store.get_run(ORG, mine.id).updated_at > old
        assert store.get_run(ORG, taken.id).updated_at == old  # fenced: not its attempt
        assert store.get_run(ORG, ended.id).updated_at == old  # not running any more
        assert store.watch_runs([(OTHER, mine.id, 1)]) == {}  # another org's key finds nothing
        many = [make_run(store, status=RunStatus.RUNNING, attempts=1) for _ in range(450)]
        found = store.watch_runs([(ORG, r.id, 1) for r in many], touch=True)
        assert len(found) == 450

    def test_compare_and_set_lets_exactly_one_thread_win(self, store: Store) -> None:
        run = make_run(store)
        results: list[Run | None] = []
        barrier = threading.Barrier(8)

        def claim() -> None:
            barrier.wait()
            results.append(
                store.update_run(
                    ORG, run.id, expect_status=[RunStatus.QUEUED], status=RunStatus.RUNNING
                )
            )

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r is not None for r in results) == 1

    # -- sessions -------------------------------------------------------------------------------
    def test_insert_run_creates_its_session_and_counts_runs(self, store: Store) -> None:
        make_run(store, session_id="chat-1")
        first = store.get_session(ORG, "chat-1")
        assert first.run_count == 1
        make_run(store, session_id="chat-1")
        second = store.get_session(ORG, "chat-1")
        assert second.run_count == 2
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at

    def test_create_session_round_trips_and_rejects_duplicates(self, store: Store) -> None:
        made = store.create_session(ORG, "s-1", metadata={"topic": "tests"})
        assert store.get_session(ORG, "s-1") == made
        with pytest.raises(Conflict):
            store.create_session(ORG, "s-1")
        with pytest.raises(NotFound):
            store.create_session("no-such-org", "s-2")

    def test_sessions_are_isolated_per_org(self, store: Store) -> None:
        store.ensure_org(OTHER)
        make_run(store, session_id="shared-name")
        store.create_session(ORG, "only-mine")
        # Another org using the same session name neither sees nor touches this org's session.
        theirs = make_run(store, org_id=OTHER, session_id="shared-name")
        assert store.get_session(OTHER, "shared-name").run_count == 1
        assert store.get_session(ORG, "shared-name").run_count == 1
        assert [r.id for r in store.list_runs(OTHER, session_id="shared-name").items] == [theirs.id]

        def get(session_id: str) -> object:
            return store.get_session(OTHER, session_id)

        assert not_found_message(get, "only-mine") == not_found_message(get, "nothing")
        assert [s.id for s in store.list_sessions(OTHER).items] == ["shared-name"]

    def test_list_sessions_walks_pages_newest_first_with_run_counts(self, store: Store) -> None:
        names = [f"s-{i:02d}" for i in range(12)]
        for i, name in enumerate(reversed(names)):  # ids that do not sort by creation time
            store.create_session(ORG, name)
            for _ in range(i % 3):
                make_run(store, session_id=name)
        got = walk(lambda c: store.list_sessions(ORG, limit=5, cursor=c))
        assert [s.id for s in got] == names
        counts = {s.id: s.run_count for s in got}
        assert counts == {name: i % 3 for i, name in enumerate(reversed(names))}

    # -- events ---------------------------------------------------------------------------------
    def test_seq_starts_at_one_and_increases_per_run(self, store: Store) -> None:
        a, b = make_run(store), make_run(store)
        seqs_a = [store.append_event(ORG, a.id, "tick", {"i": i}).seq for i in range(5)]
        seqs_b = [store.append_event(ORG, b.id, "tick", {}).seq for _ in range(2)]
        assert seqs_a == [1, 2, 3, 4, 5] and seqs_b == [1, 2]
        events = store.list_events(ORG, a.id)
        assert [(e.seq, e.data) for e in events] == [(i + 1, {"i": i}) for i in range(5)]
        assert all(e.run_id == a.id and e.type == "tick" for e in events)

    def test_append_event_returns_what_is_stored(self, store: Store) -> None:
        run = make_run(store)
        data = {"text": "日本語 🤖", "n": [1, {"deep": None}], "f": 1.5, "b": False}
        event = store.append_event(ORG, run.id, "model.delta", data, time="2026-01-02T03:04:05Z")
        assert event == Event(run.id, 1, "model.delta", "2026-01-02T03:04:05Z", data)
        assert store.list_events(ORG, run.id) == [event]
        assert store.append_event(ORG, run.id, "x", {}).time > "2026"

    def test_append_events_writes_all_in_order_or_none(self, store: Store) -> None:
        run = make_run(store, status=RunStatus.RUNNING, attempts=1)
        assert store.append_events(ORG, run.id, [], attempt=1) == []
        step = [("model.response", {"text": "a"}), ("tool.call", {"id": "c1"})]
        written = store.append_events(ORG, run.id, step, attempt=1)
        assert [(e.seq, e.type, e.data) for e in written] == [
            (1, "model.response", {"text": "a"}),
            (2, "tool.call", {"id": "c1"}),
        ]
        assert store.list_events(ORG, run.id) == written
        # Fenced by the attempt like append_event, and all or none.
        store.update_run(ORG, run.id, expect_attempts=1, attempts=2)
        with pytest.raises(Superseded):
            store.append_events(ORG, run.id, [("tool.result", {})], attempt=1)
        with pytest.raises(InvalidInput):  # the second cannot be stored: the first goes too
            store.append_events(ORG, run.id, [("a", {}), ("b", {"x": object()})], attempt=2)
        assert [e.seq for e in store.list_events(ORG, run.id)] == [1, 2]
        with pytest.raises(NotFound):
            store.append_events(OTHER, run.id, step, attempt=2)
        # Inside a caller's transaction it joins it: the end and the events commit together.
        with store.transaction():
            store.append_events(ORG, run.id, [("model.response", {})], attempt=2)
            store.update_run(ORG, run.id, expect_attempts=2, status=RunStatus.SUCCEEDED)
            store.append_event(ORG, run.id, EventType.RUN_SUCCEEDED, {})
        assert [e.type for e in store.list_events(ORG, run.id)][-2:] == [
            "model.response",
            EventType.RUN_SUCCEEDED,
        ]

    def test_events_after_and_limit(self, store: Store) -> None:
        run = make_run(store)
        for i in range(10):
            store.append_event(ORG, run.id, "tick", {"i": i})
        assert [e.seq for e in store.list_events(ORG, run.id, after=7)] == [8, 9, 10]
        assert [e.seq for e in store.list_events(ORG, run.id, after=2, limit=3)] == [3, 4, 5]
        assert store.list_events(ORG, run.id, after=10) == []
        with pytest.raises(InvalidInput):
            store.list_events(ORG, run.id, limit=0)

    def test_iter_events_reads_past_one_page(self, store: Store) -> None:
        run = make_run(store)
        with store.transaction():
            for i in range(2345):
                store.append_event(ORG, run.id, "tick", {"i": i})
        seqs = [e.seq for e in store.iter_events(ORG, run.id)]
        assert seqs == list(range(1, 2346))
        assert [e.seq for e in store.iter_events(ORG, run.id, after=2340)] == [
            2341,
            2342,
            2343,
            2344,
            2345,
        ]

    def test_concurrent_appends_get_every_seq_exactly_once(self, store: Store) -> None:
        run = make_run(store)
        threads_n, per_thread = 8, 40
        got: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads_n)

        def writer(k: int) -> None:
            try:
                barrier.wait()
                for i in range(per_thread):
                    seq = store.append_event(ORG, run.id, "tick", {"t": k, "i": i}).seq
                    with lock:
                        got.append(seq)
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        total = threads_n * per_thread
        assert sorted(got) == list(range(1, total + 1))
        events = list(store.iter_events(ORG, run.id))
        assert [e.seq for e in events] == list(range(1, total + 1))
        # Each writer's own events keep their order.
        for k in range(threads_n):
            assert [e.data["i"] for e in events if e.data["t"] == k] == list(range(per_thread))

    # -- the fence: nothing after the end, nothing from a superseded attempt ---------------------
    @pytest.mark.parametrize("end", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
    def test_no_event_follows_a_terminal_event(self, store: Store, end: RunStatus) -> None:
        run = make_run(store, status=RunStatus.RUNNING)
        store.append_event(ORG, run.id, EventType.RUN_STARTED, {})
        terminal = {
            RunStatus.SUCCEEDED: EventType.RUN_SUCCEEDED,
            RunStatus.FAILED: EventType.RUN_FAILED,
            RunStatus.CANCELLED: EventType.RUN_CANCELLED,
        }[end]
        with store.transaction():  # as an attempt finishes: the status, then its event
            assert store.update_run(ORG, run.id, status=end) is not None
            last = store.append_event(ORG, run.id, terminal, {})
        for type in [EventType.MODEL_RESPONSE, EventType.TOOL_CALL, terminal, *HOSTILE]:
            with pytest.raises(Conflict, match="no event may follow its terminal event"):
                store.append_event(ORG, run.id, type, {"late": True})
            with pytest.raises(Superseded):  # an attempt's write says why it must stop
                store.append_event(ORG, run.id, type, {"late": True}, attempt=0)
        with pytest.raises(Conflict), store.transaction():
            store.append_event(ORG, run.id, EventType.TOOL_RESULT, {})
        assert store.list_events(ORG, run.id)[-1] == last
        # An operator's retry re-opens the run (queued again, in the same transaction).
        with store.transaction():
            store.update_run(ORG, run.id, expect_status=[end], status=RunStatus.QUEUED)
            again = store.append_event(ORG, run.id, EventType.RUN_RETRYING, {})
        assert again.seq == last.seq + 1

    def test_a_run_without_a_terminal_event_takes_its_end(self, store: Store) -> None:
        """Cancelling a queued run writes the status, then the event: that must apply."""
        run = make_run(store)
        with store.transaction():
            store.update_run(ORG, run.id, status=RunStatus.CANCELLED)
            ended = store.append_event(ORG, run.id, EventType.RUN_CANCELLED, {})
        assert ended.seq == 1
        with pytest.raises(Conflict):
            store.append_event(ORG, run.id, EventType.RUN_CANCELLED, {})

    def test_appends_are_fenced_by_the_attempt(self, store: Store) -> None:
        run = make_run(store, status=RunStatus.RUNNING, attempts=1)
        assert store.append_event(ORG, run.id, "model.request", {}, attempt=1).seq == 1
        taken = store.update_run(ORG, run.id, expect_attempts=1, attempts=2)
        assert taken is not None
        for stale in [1, 0, -1, 3, 2**40]:
            with pytest.raises(Superseded, match="superseded"):
                store.append_event(ORG, run.id, "tool.call", {"stale": stale}, attempt=stale)
            with pytest.raises(Superseded), store.transaction():
                store.append_event(ORG, run.id, "tool.call", {"stale": stale}, attempt=stale)
        assert store.append_event(ORG, run.id, "run.started", {}, attempt=2).seq == 2
        # Queued again by its own attempt (a retry): still its own until the next start.
        with store.transaction():
            store.update_run(ORG, run.id, expect_attempts=2, status=RunStatus.QUEUED)
            store.append_event(ORG, run.id, "run.retrying", {}, attempt=2)
        store.update_run(ORG, run.id, status=RunStatus.FAILED)  # ended: fenced for everyone
        with pytest.raises(Superseded, match="failed"):
            store.append_event(ORG, run.id, "model.response", {}, attempt=2)
        assert [e.seq for e in store.list_events(ORG, run.id)] == [1, 2, 3]
        with pytest.raises(NotFound):
            store.append_event(ORG, "run_nope", "x", {}, attempt=1)
        with pytest.raises(NotFound):
            store.append_event(OTHER, run.id, "x", {}, attempt=2)

    def test_a_takeover_racing_a_stale_attempt_leaves_nothing_after_it(self, store: Store) -> None:
        """Every event of the superseded attempt sorts before the takeover's run.started,
        however the appends and the takeover interleave."""
        for _ in range(5):
            run = make_run(store, status=RunStatus.RUNNING, attempts=1)
            go = threading.Barrier(2)
            refused: list[BaseException] = []

            def stale(
                run_id: str = run.id,
                go: threading.Barrier = go,
                refused: list[BaseException] = refused,
            ) -> None:
                go.wait()
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:  # until refused
                        store.append_event(ORG, run_id, "tick", {}, attempt=1)
                except Superseded as exc:
                    refused.append(exc)

            writer = threading.Thread(target=stale)
            writer.start()
            go.wait()
            with store.transaction():
                assert store.update_run(ORG, run.id, expect_attempts=1, attempts=2) is not None
                started = store.append_event(ORG, run.id, "run.started", {}, attempt=2)
            writer.join(timeout=120)
            assert not writer.is_alive() and len(refused) == 1
            events = list(store.iter_events(ORG, run.id))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert events[-1].seq == started.seq and events[-1].type == "run.started"

    def test_an_end_racing_appends_leaves_nothing_after_it(self, store: Store) -> None:
        for _ in range(5):
            run = make_run(store, status=RunStatus.RUNNING)
            go = threading.Barrier(2)
            refused: list[BaseException] = []

            def late(
                run_id: str = run.id,
                go: threading.Barrier = go,
                refused: list[BaseException] = refused,
            ) -> None:
                go.wait()
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:  # until refused
                        store.append_event(ORG, run_id, "tick", {})
                except Conflict as exc:
                    refused.append(exc)

            writer = threading.Thread(target=late)
            writer.start()
            go.wait()
            with store.transaction():
                store.update_run(ORG, run.id, status=RunStatus.SUCCEEDED)
                ended = store.append_event(ORG, run.id, EventType.RUN_SUCCEEDED, {})
            writer.join(timeout=120)
            assert not writer.is_alive() and len(refused) == 1
            events = list(store.iter_events(ORG, run.id))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert events[-1] == ended

    # -- transactions ---------------------------------------------------------------------------
    def test_rollback_on_exception_leaves_nothing(self, store: Store) -> None:
        kept = make_run(store)
        run_id = new_id("run")
        with pytest.raises(RuntimeError), store.transaction():
            make_run(store, id=run_id, session_id="ghost")
            store.append_event(ORG, run_id, "run.created", {})
            store.append_event(ORG, kept.id, "tick", {})
            store.update_run(ORG, kept.id, status=RunStatus.FAILED)
            store.set_meta("ghost", "1")
            raise RuntimeError("boom")
        with pytest.raises(NotFound):
            store.get_run(ORG, run_id)
        with pytest.raises(NotFound):
            store.get_session(ORG, "ghost")
        assert store.get_run(ORG, kept.id) == kept
        assert store.list_events(ORG, kept.id) == []
        assert store.get_meta("ghost") is None
        # The store is usable afterwards, and seq continues from what was committed.
        assert store.append_event(ORG, kept.id, "tick", {}).seq == 1

    def test_nested_transaction_joins_the_outer_one(self, store: Store) -> None:
        run_id = new_id("run")
        with pytest.raises(RuntimeError), store.transaction():
            with store.transaction():
                make_run(store, id=run_id)
                with store.transaction():
                    store.append_event(ORG, run_id, "a", {})
            # The inner blocks ended, but nothing is committed until the outer one does.
            assert store.get_run(ORG, run_id).id == run_id
            raise RuntimeError("outer fails")
        with pytest.raises(NotFound):
            store.get_run(ORG, run_id)
        with store.transaction():
            with store.transaction():
                run = make_run(store)
            store.append_event(ORG, run.id, "a", {})
        assert [e.seq for e in store.list_events(ORG, run.id)] == [1]

    def test_an_error_inside_an_inner_block_rolls_back_the_whole(self, store: Store) -> None:
        run_id = new_id("run")
        with pytest.raises(Conflict), store.transaction():
            make_run(store, id=run_id)
            with store.transaction():
                make_run(store, id=run_id)  # duplicate
        with pytest.raises(NotFound):
            store.get_run(ORG, run_id)

    def test_writes_work_inside_an_explicit_transaction(self, store: Store) -> None:
        with store.transaction():
            store.ensure_org(OTHER)
            run = make_run(store, org_id=OTHER, session_id="s")
            store.create_session(OTHER, "s2")
            event = store.append_event(OTHER, run.id, "run.created", {})
            updated = store.update_run(OTHER, run.id, status=RunStatus.RUNNING)
            store.set_meta("k", "v")
        assert event.seq == 1 and updated is not None
        assert store.get_run(OTHER, run.id).status is RunStatus.RUNNING
        assert {s.id for s in store.list_sessions(OTHER).items} == {"s", "s2"}
        assert store.get_meta("k") == "v"

    # -- hostile input --------------------------------------------------------------------------
    def test_hostile_strings_round_trip_unchanged(self, store: Store) -> None:
        for text in HOSTILE:
            run = make_run(
                store,
                input=text,
                agent=text,
                output=text,
                session_id=text,
                metadata={text: text},
            )
            assert store.get_run(ORG, run.id) == run
            assert store.get_session(ORG, text).id == text
            assert [r.id for r in store.list_runs(ORG, session_id=text).items] == [run.id]
            event = store.append_event(ORG, run.id, text, {"v": text, text: [text]})
            assert store.list_events(ORG, run.id) == [event]
            store.set_meta(text, text)
            assert store.get_meta(text) == text
            store.create_session(ORG, text + "/2", metadata={"m": text})
            assert store.get_session(ORG, text + "/2").metadata == {"m": text}
        for text in HOSTILE:  # ids that never existed are simply not found
            with pytest.raises(NotFound):
                store.get_run(ORG, text)
            with pytest.raises(NotFound):
                store.get_org(text)
        assert len(store.list_runs(ORG).items) == len(HOSTILE)

    def test_unserialisable_data_is_invalid_input(self, store: Store) -> None:
        run = make_run(store)
        with pytest.raises(InvalidInput):
            store.append_event(ORG, run.id, "x", {"bad": object()})
        with pytest.raises(InvalidInput):
            store.update_run(ORG, run.id, error={"bad": {1, 2}})
        assert store.list_events(ORG, run.id) == []

    # -- erasure --------------------------------------------------------------------------------
    def _claim(self, store: Store, org_id: str, key: str, run: Run) -> None:
        from agent_sdk.store.idempotency import DONE, IdempotencyRecord

        now = utcnow()
        record = IdempotencyRecord(
            org_id, key, "h", DONE, now, "9999-12-31T23:59:59.999999Z", run.id, run.to_dict()
        )
        assert store.claim_idempotency_key(record) is None

    def test_delete_run_erases_its_events_and_claims_and_counts_them(self, store: Store) -> None:
        kept = make_run(store, session_id="s")
        gone = make_run(store, session_id="s", input="erase me")
        for i in range(5):
            store.append_event(ORG, gone.id, "tool.result", {"output": f"secret {i}"})
        store.append_event(ORG, kept.id, "tool.result", {"output": "stays"})
        self._claim(store, ORG, "k-gone", gone)
        self._claim(store, ORG, "k-kept", kept)

        deletion = store.delete_run(ORG, gone.id)

        assert deletion == Deletion("run", gone.id, ORG, runs=1, events=5, idempotency_keys=1)
        for read in (store.get_run, store.list_events, store.delete_run):
            with pytest.raises(NotFound):
                read(ORG, gone.id)
        assert store.get_idempotency_key(ORG, "k-gone", now=utcnow()) is None
        # Nothing else moved: the other run, its events and claim, and the session (one run less).
        assert store.get_run(ORG, kept.id) == kept
        assert [e.data for e in store.list_events(ORG, kept.id)] == [{"output": "stays"}]
        assert store.get_idempotency_key(ORG, "k-kept", now=utcnow()) is not None
        assert store.get_session(ORG, "s").run_count == 1
        assert [r.id for r in store.list_runs(ORG).items] == [kept.id]

    def test_deleting_another_orgs_run_is_not_found_and_deletes_nothing(self, store: Store) -> None:
        store.ensure_org(OTHER)
        theirs = make_run(store, OTHER)
        store.append_event(OTHER, theirs.id, "x", {})
        unknown = not_found_message(lambda k: store.delete_run(ORG, k), new_id("run"))
        foreign = not_found_message(lambda k: store.delete_run(ORG, k), theirs.id)
        assert foreign == unknown
        assert store.get_run(OTHER, theirs.id) == theirs
        assert len(store.list_events(OTHER, theirs.id)) == 1

    def test_a_deleted_run_cannot_be_written_back(self, store: Store) -> None:
        run = make_run(store)
        store.delete_run(ORG, run.id)
        with pytest.raises(NotFound):
            store.append_event(ORG, run.id, "tool.result", {"late": True})
        with pytest.raises(NotFound):
            store.update_run(ORG, run.id, status=RunStatus.SUCCEEDED, output="late")
        with pytest.raises(NotFound):
            store.update_run(ORG, run.id, expect_status=[RunStatus.RUNNING], output="late")
        with pytest.raises(NotFound):
            store.list_events(ORG, run.id)

    def test_delete_session_erases_every_run_of_it_and_only_those(self, store: Store) -> None:
        store.ensure_org(OTHER)
        mine = [make_run(store, session_id="chat") for _ in range(30)]
        for run in mine[:10]:
            store.append_event(ORG, run.id, "model.response", {"text": "t"})
            store.append_event(ORG, run.id, "tool.result", {"output": "o"})
        self._claim(store, ORG, "k1", mine[0])
        other_session = make_run(store, session_id="chat-2")
        same_name_elsewhere = make_run(store, OTHER, session_id="chat")
        self._claim(store, OTHER, "k1", same_name_elsewhere)

        deletion = store.delete_session(ORG, "chat")

        assert deletion == Deletion(
            "session", "chat", ORG, runs=30, events=20, idempotency_keys=1, sessions=1
        )
        with pytest.raises(NotFound):
            store.get_session(ORG, "chat")
        for run in mine:
            with pytest.raises(NotFound):
                store.get_run(ORG, run.id)
        assert [r.id for r in store.list_runs(ORG).items] == [other_session.id]
        assert store.list_runs(ORG, session_id="chat").items == []
        assert store.get_run(OTHER, same_name_elsewhere.id) == same_name_elsewhere
        assert store.get_session(OTHER, "chat").run_count == 1
        assert store.get_idempotency_key(OTHER, "k1", now=utcnow()) is not None
        with pytest.raises(NotFound):
            store.delete_session(ORG, "chat")

    def test_an_empty_session_is_deleted_and_another_orgs_is_not_found(self, store: Store) -> None:
        store.ensure_org(OTHER)
        store.create_session(ORG, "empty")
        store.create_session(OTHER, "theirs")
        assert store.delete_session(ORG, "empty") == Deletion("session", "empty", ORG, sessions=1)
        unknown = not_found_message(lambda k: store.delete_session(ORG, k), "never")
        foreign = not_found_message(lambda k: store.delete_session(ORG, k), "theirs")
        assert foreign == unknown
        assert store.get_session(OTHER, "theirs").id == "theirs"

    def test_deletion_rolls_back_with_its_transaction(self, store: Store) -> None:
        run = make_run(store, session_id="s")
        store.append_event(ORG, run.id, "x", {})
        with pytest.raises(RuntimeError), store.transaction():
            store.delete_session(ORG, "s")
            raise RuntimeError("the audit record could not be written")
        assert store.get_run(ORG, run.id) == run
        assert len(store.list_events(ORG, run.id)) == 1

    def test_hostile_ids_are_not_found_and_touch_nothing(self, store: Store) -> None:
        run = make_run(store, session_id="s")
        for text in [*HOSTILE, "%", "_", "*", "run_%", "' OR '1'='1", "../" + run.id, run.id + " "]:
            with pytest.raises(NotFound):
                store.delete_run(ORG, text)
            with pytest.raises(NotFound):
                store.delete_session(ORG, text)
        assert store.get_run(ORG, run.id) == run
        assert store.get_session(ORG, "s").run_count == 1

    def test_erasure_racing_writers_counts_every_committed_event(self, store: Store) -> None:
        """Writers append (alone and inside transactions that also update the run) while the run
        is erased: every append that returned is in the erasure's count, and every later one is
        NotFound. No event commits after the erasure, so none is left behind."""
        run = make_run(store, status=RunStatus.RUNNING)
        appended = [0] * 4
        errors: list[BaseException] = []
        started = threading.Barrier(5)

        def writer(k: int) -> None:
            try:
                started.wait()
                while True:
                    if k % 2:
                        with store.transaction():
                            store.update_run(ORG, run.id, steps=appended[k])
                            store.append_event(ORG, run.id, "tool.result", {"k": k})
                    else:
                        store.append_event(ORG, run.id, "tool.result", {"k": k})
                    appended[k] += 1
            except NotFound:
                return
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        started.wait()
        while sum(appended) < 20 and not errors:
            threading.Event().wait(0.005)
        deletion = store.delete_run(ORG, run.id)
        for t in threads:
            t.join(30)
        assert errors == []
        assert deletion.events == sum(appended)
        with pytest.raises(NotFound):
            store.list_events(ORG, run.id)
