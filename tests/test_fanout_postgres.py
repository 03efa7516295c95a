"""Live events across processes on Postgres: an event appended by one process wakes the readers
of its run in another through LISTEN/NOTIFY, well before any store poll would have found it.

Every test runs on a real PostgreSQL, in the fresh schema of the ``postgres_url`` fixture, with
the readers' store polls set to 30 s, so an event that arrives in well under a second was pushed.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from conftest import require_module
from waiting import wait_until

from agent_sdk.config import load_settings
from agent_sdk.core import runs as runs_module
from agent_sdk.core.events import Subscription
from agent_sdk.core.runtime import Runtime
from agent_sdk.errors import NotFound
from agent_sdk.ids import new_id, utcnow
from agent_sdk.masking import mask_url
from agent_sdk.records import Event, Run, RunStatus
from agent_sdk.store import pg_notify
from agent_sdk.store.pg_notify import CHANNEL_SQL, parse_payload, payload_run_id
from agent_sdk.store.postgres import PostgresStore

psycopg = require_module("psycopg", "Postgres")

pytestmark = pytest.mark.services

ORG = "default"
OTHER = "other-org"
# Seconds: "pushed", against a poll of 30 s. Generous on purpose: a push arrives in a few ms
# on a quiet machine, but a busy 2-core one (the suite's CI) delayed some past 0.3 s, and the
# tests only need to tell a push from a poll ten times slower.
FAST = 3.0
PATIENCE = 30.0  # seconds to wait for something that is bound to happen
SLOW_POLL = 30.0


@pytest.fixture(autouse=True)
def slow_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers poll the store only every 30 s, pushed or not, unless a test says otherwise."""
    monkeypatch.setattr(runs_module, "POLL_INTERVAL", SLOW_POLL)
    monkeypatch.setattr(runs_module, "PUSHED_POLL_INTERVAL", SLOW_POLL)


def make_runtime(postgres_url: str, home: Path) -> Runtime:
    env = {
        "HOME": str(home),
        "AGENT_SDK_STORAGE_BACKEND": "postgres",
        "AGENT_SDK_DATABASE_URL": postgres_url,
    }
    return Runtime(load_settings(env=env, cwd=Path.cwd()))


@pytest.fixture
def reader(postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(postgres_url, tmp_path / "reader")
    try:
        yield rt
    finally:
        rt.close(wait=True, timeout=10)


@pytest.fixture
def writer(postgres_url: str, reader: Runtime) -> Iterator[PostgresStore]:
    """Another store on the same schema (migrated by ``reader``): another process, as far as
    the reader's bus can tell, since nothing it writes is published there."""
    store = PostgresStore.from_url(postgres_url)
    try:
        store.ensure_org(ORG)
        store.ensure_org(OTHER)
        yield store
    finally:
        store.close()


def add_run(store: PostgresStore, run_id: str | None = None, org: str = ORG) -> str:
    now = utcnow()
    run_id = run_id or new_id("run")
    store.insert_run(Run(run_id, org, "demo", RunStatus.RUNNING, "x", now, now))
    return run_id


async def until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.01)


class Follower:
    """A reader of ``RunService.stream`` running as a task, with each event's arrival time."""

    def __init__(self, rt: Runtime, run_id: str, org: str = ORG) -> None:
        self.got: list[tuple[float, Event]] = []
        self._stream: AsyncIterator[Event] = rt.runs.stream(org, run_id)
        self.task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        async for event in self._stream:
            self.got.append((time.monotonic(), event))

    async def next_after(self, started: float, count: int, timeout: float = PATIENCE) -> float:
        """Wait for the ``count``-th event; how long after ``started`` it arrived."""
        await until(lambda: len(self.got) >= count or self.task.done(), timeout)
        if self.task.done():
            self.task.result()
        return self.got[count - 1][0] - started

    async def stop(self) -> None:
        self.task.cancel()
        # Bounded: a follower that swallowed its cancellation would otherwise hang the test
        # (it once sat in epoll_wait for 5 minutes); asyncio.wait raises nothing itself.
        done, _ = await asyncio.wait([self.task], timeout=PATIENCE)
        assert done, "the follower did not stop when cancelled"
        assert self.task.cancelled(), "the follower swallowed its cancellation"


async def pushed(rt: Runtime) -> None:
    await until(lambda: rt.bus.pushed)


async def quiet(rt: Runtime, sub: Subscription) -> None:
    """Wait until the listener that ``sub`` started is up *and* its "re-read the store" wake-up
    has reached ``sub``, so the next thing ``sub`` hears is news. (``pushed`` turns True in the
    listener's thread before that wake-up crosses to the loop: draining at once raced it.)"""
    await pushed(rt)
    assert await woken(sub, FAST), "the listener came up without waking its subscriber"
    assert sub.queue.empty()


def channel_of(postgres_url: str) -> str:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT {CHANNEL_SQL}").fetchone()
    assert row is not None
    return str(row[0])


def notify(postgres_url: str, payload: str, channel: str | None = None) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (channel or channel_of(postgres_url), payload))


# -- delivery ------------------------------------------------------------------------------------
def test_an_event_from_another_store_reaches_a_follower_at_once(
    reader: Runtime, writer: PostgresStore
) -> None:
    run_id = add_run(writer)

    async def main() -> list[float]:
        follower = Follower(reader, run_id)
        await pushed(reader)
        delays = []
        for i in range(20):
            started = time.monotonic()
            await asyncio.to_thread(writer.append_event, ORG, run_id, "tool.result", {"i": i})
            delays.append(await follower.next_after(started, i + 1))
        writer.append_event(ORG, run_id, "run.succeeded", {})
        await asyncio.wait_for(follower.task, PATIENCE)
        assert [e.seq for _, e in follower.got] == list(range(1, 22))
        return delays

    delays = asyncio.run(main())
    assert max(delays) < FAST, delays


@pytest.mark.slow
def test_an_event_from_another_process_reaches_a_follower_at_once(
    reader: Runtime, writer: PostgresStore, postgres_url: str
) -> None:
    run_id = add_run(writer)
    code = (
        "import sys, time\n"
        "from agent_sdk.store.postgres import PostgresStore\n"
        "s = PostgresStore.from_url(sys.argv[1])\n"
        "for i in range(10):\n"
        "    time.sleep(0.05)\n"
        "    s.append_event('default', sys.argv[2], 'tool.result', {'sent': time.time()})\n"
        "s.append_event('default', sys.argv[2], 'run.succeeded', {'sent': time.time()})\n"
        "s.close()\n"
    )

    async def main() -> list[float]:
        follower = Follower(reader, run_id)
        await pushed(reader)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, postgres_url, run_id
        )
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.wait_for(follower.task, PATIENCE)
        wall = time.time() - time.monotonic()  # monotonic arrival + wall = wall arrival
        return [at + wall - e.data["sent"] for at, e in follower.got]

    delays = asyncio.run(main())
    assert len(delays) == 11
    assert max(delays) < FAST, delays


def test_a_run_executed_by_another_runtime_streams_to_the_end(
    postgres_url: str, tmp_path: Path
) -> None:
    """The whole path: runtime A creates and executes a run inline; runtime B, which executes
    nothing and hears of it only through Postgres, streams it to its terminal event."""
    a = make_runtime(postgres_url, tmp_path / "a")
    b = make_runtime(postgres_url, tmp_path / "b")
    spec = {"name": "steps", "model": "scripted", "latency": 0.05, "script": [
        {"tool": "fs.list", "arguments": {"path": "."}},
        {"text": "ok"},
    ]}  # fmt: skip
    try:

        async def main() -> list[Event]:
            run = a.runs.create(ORG, spec, "go")
            return [e async for e in b.runs.stream(ORG, run.id)]

        started = time.monotonic()
        events = asyncio.run(asyncio.wait_for(main(), 20))
        assert time.monotonic() - started < 10  # not one 30-second poll
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].type == "run.succeeded"
        assert b.bus.pushed
    finally:
        a.close(wait=True, timeout=10)
        b.close(wait=True, timeout=10)


# -- outages -------------------------------------------------------------------------------------
def terminate(postgres_url: str, pid: int) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert row == (True,)


def listener_pid(rt: Runtime) -> int:
    pid = getattr(rt.bus.listener, "backend_pid", None)
    assert isinstance(pid, int)
    return pid


def test_the_listener_reconnects_after_its_backend_is_killed_and_loses_nothing(
    reader: Runtime, writer: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Down for 0.5-1 s after the kill, so the events below are committed while nobody listens.
    monkeypatch.setattr(pg_notify, "BACKOFF_MIN", 1.0)
    run_id = add_run(writer)

    async def main() -> None:
        follower = Follower(reader, run_id)
        await pushed(reader)
        first = listener_pid(reader)
        terminate(postgres_url, first)
        await until(lambda: not reader.bus.pushed)
        for i in range(5):
            writer.append_event(ORG, run_id, "tool.result", {"during": i})
        # Found by the re-read that follows the reconnection, not by a 30-second poll.
        await follower.next_after(time.monotonic(), 5)
        # A busy machine may run the re-read of the drop only after the appends, finding them
        # before the reconnection: wait for that, rather than assume it came first.
        await until(lambda: reader.bus.pushed)
        assert listener_pid(reader) != first
        started = time.monotonic()
        writer.append_event(ORG, run_id, "run.succeeded", {})
        assert await follower.next_after(started, 6) < FAST
        await asyncio.wait_for(follower.task, PATIENCE)
        assert [e.seq for _, e in follower.got] == [1, 2, 3, 4, 5, 6]

    asyncio.run(main())


@pytest.mark.slow  # waits out a backoff
def test_readers_poll_the_store_while_the_listener_is_down(
    reader: Runtime, writer: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_module, "POLL_INTERVAL", 0.1)  # the fallback; pushed stays 30 s
    monkeypatch.setattr(pg_notify, "BACKOFF_MIN", 6.0)  # down for 3-6 s
    run_id = add_run(writer)

    async def main() -> None:
        follower = Follower(reader, run_id)
        await pushed(reader)
        terminate(postgres_url, listener_pid(reader))
        await until(lambda: not reader.bus.pushed)
        for i in range(3):
            started = time.monotonic()
            writer.append_event(ORG, run_id, "tool.result", {"i": i})
            assert not reader.bus.pushed
            assert await follower.next_after(started, i + 1) < 0.1 + FAST
        await until(lambda: reader.bus.pushed)  # and it comes back by itself
        await follower.stop()

    asyncio.run(main())


def test_an_idle_follower_burns_no_cpu(reader: Runtime, writer: PostgresStore) -> None:
    run_id = add_run(writer)

    async def main() -> float:
        followers = [Follower(reader, run_id) for _ in range(3)]
        await pushed(reader)
        # Settling, not synchronisation: a start-up re-read the window catches costs a
        # millisecond or so of CPU, well inside the budget.
        await asyncio.sleep(0.2)  # past the start-up re-reads
        cpu = time.process_time()
        await asyncio.sleep(1.0)  # the window measured: nothing may spin in it
        used = time.process_time() - cpu
        for f in followers:
            await f.stop()
        return used

    used = asyncio.run(main())
    assert used < 0.05, f"{used:.3f} s of CPU in an idle second"


# -- hostile input and isolation -----------------------------------------------------------------
HOSTILE_IDS = [
    "run with spaces",
    "quote ' double \" semicolon ; NOTIFY x; --",
    "new\nline\ttab",
    "emoji \U0001f680 rtl \u05e9\u05dc\u05d5\u05dd",
    "7 run_looks_like_a_payload",
    "r" * 5000,  # too long for a payload: announced as "some run"
]


def test_runs_with_hostile_ids_are_pushed_too(reader: Runtime, writer: PostgresStore) -> None:
    ids = [add_run(writer, run_id) for run_id in HOSTILE_IDS]

    async def main() -> None:
        followers = [Follower(reader, run_id) for run_id in ids]
        await pushed(reader)
        for run_id, follower in zip(ids, followers, strict=True):
            started = time.monotonic()
            writer.append_event(ORG, run_id, "run.succeeded", {"id": run_id})
            assert await follower.next_after(started, 1) < FAST, run_id
            await asyncio.wait_for(follower.task, PATIENCE)
            assert [(e.run_id, e.data) for _, e in follower.got] == [(run_id, {"id": run_id})]

    asyncio.run(main())


def test_forged_notifications_are_ignored_and_do_not_stop_the_listener(
    reader: Runtime, writer: PostgresStore, postgres_url: str
) -> None:
    run_id = add_run(writer)
    forged = [
        "",
        "garbage",
        " ",
        "-1 " + run_id,
        "\uff11 " + run_id,  # a fullwidth digit
        "9" * 5000 + " " + run_id,  # more digits than int() takes
        "99999999999999999999 " + run_id,
        "1 " + "x" * 7000,
        "1 \x01\x02 control",
    ]

    async def main() -> None:
        follower = Follower(reader, run_id)
        await pushed(reader)
        pid = listener_pid(reader)
        for payload in forged:
            await asyncio.to_thread(notify, postgres_url, payload)
        await asyncio.sleep(0.3)  # a short window in which no forged note may reach it
        assert follower.got == [] and not follower.task.done()
        assert reader.bus.pushed and listener_pid(reader) == pid
        started = time.monotonic()
        writer.append_event(ORG, run_id, "run.succeeded", {})
        assert await follower.next_after(started, 1) < FAST
        await asyncio.wait_for(follower.task, PATIENCE)
        assert [e.seq for _, e in follower.got] == [1]

    asyncio.run(main())


def test_a_notification_carries_no_content(writer: PostgresStore, postgres_url: str) -> None:
    run_id = add_run(writer)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'LISTEN "{channel_of(postgres_url)}"')
        writer.append_event(ORG, run_id, "tool.result", {"secret": "hunter2"})
        notes = list(conn.notifies(timeout=PATIENCE, stop_after=1))
    assert [n.payload for n in notes] == [f"1 {run_id}"]
    assert parse_payload(notes[0].payload) == (run_id, 1)


def test_another_orgs_run_cannot_be_followed_and_its_events_wake_no_one_else(
    reader: Runtime, writer: PostgresStore
) -> None:
    theirs = add_run(writer, org=OTHER)
    ours = add_run(writer)

    async def main() -> None:
        with pytest.raises(NotFound):
            async for _ in reader.runs.stream(ORG, theirs):
                pass
        sub = reader.bus.subscribe(ours)
        try:
            await quiet(reader, sub)
            writer.append_event(OTHER, theirs, "tool.result", {"secret": "hunter2"})
            await asyncio.sleep(
                0.3
            )  # a short window in which the other org's write must not wake it
            assert sub.queue.empty()
        finally:
            reader.bus.unsubscribe(sub)

    asyncio.run(main())


async def woken(sub: Subscription, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(sub.queue.get(), timeout) is None
    except TimeoutError:
        return False


def test_schemas_in_one_database_do_not_hear_each_other(
    reader: Runtime, writer: PostgresStore, postgres_url: str
) -> None:
    """The same run id in two schemas (two deployments, or two tests at once): a write in one
    wakes only the readers of the other."""
    run_id = add_run(writer)
    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    elsewhere = PostgresStore.from_url(
        postgres_url.rsplit("%3D", 1)[0] + "%3D" + schema  # search_path=<the other schema>
    )
    try:
        elsewhere.migrate()
        elsewhere.ensure_org(ORG)
        add_run(elsewhere, run_id)
        assert channel_of(postgres_url) != channel_of(elsewhere.url)

        async def main() -> None:
            sub = reader.bus.subscribe(run_id)
            try:
                await quiet(reader, sub)
                elsewhere.append_event(ORG, run_id, "tool.result", {})
                assert not await woken(sub, 0.5)
                writer.append_event(ORG, run_id, "tool.result", {})
                assert await woken(sub, FAST)
            finally:
                reader.bus.unsubscribe(sub)

        asyncio.run(main())
    finally:
        elsewhere.close()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_nothing_is_announced_before_commit_nor_after_a_rollback(
    reader: Runtime, writer: PostgresStore
) -> None:
    run_id = add_run(writer)

    class Boom(Exception):
        pass

    async def main() -> None:
        sub = reader.bus.subscribe(run_id)
        try:
            await quiet(reader, sub)
            with pytest.raises(Boom), writer.transaction():
                writer.append_event(ORG, run_id, "tool.result", {})
                raise Boom
            assert not await woken(sub, 0.5)

            def slow_commit() -> None:
                with writer.transaction():
                    writer.append_event(ORG, run_id, "tool.result", {})
                    time.sleep(0.5)

            started = time.monotonic()
            commit = asyncio.ensure_future(asyncio.to_thread(slow_commit))
            assert await woken(sub, PATIENCE)
            assert time.monotonic() - started >= 0.5  # heard at commit, not at the append
            await commit
        finally:
            reader.bus.unsubscribe(sub)
        assert [e.seq for e in writer.list_events(ORG, run_id)] == [1]

    asyncio.run(main())


# -- lifecycle -----------------------------------------------------------------------------------
def backends(postgres_url: str) -> set[int]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            ("agent-sdk events listener",),
        ).fetchall()
    return {r[0] for r in rows}


def test_the_listener_starts_with_the_first_follower_and_stops_on_close(
    postgres_url: str, tmp_path: Path
) -> None:
    rt = make_runtime(postgres_url, tmp_path / "rt")
    try:
        assert isinstance(rt.store, PostgresStore)
        run_id = add_run(rt.store)
        assert rt.bus.listener is None  # a runtime that streams nothing holds no connection

        async def main() -> int:
            follower = Follower(rt, run_id)
            await pushed(rt)
            pid = listener_pid(rt)
            second = Follower(rt, run_id)
            await asyncio.sleep(0.05)
            assert listener_pid(rt) == pid  # one per process, not per follower
            await follower.stop()
            await second.stop()
            return pid

        pid = asyncio.run(main())
        assert pid in backends(postgres_url)
    finally:
        rt.close(wait=True, timeout=10)
    assert rt.bus.listener is None and not rt.bus.pushed
    deadline = time.monotonic() + 5
    while pid in backends(postgres_url):
        assert time.monotonic() < deadline, "the listener's connection outlived close()"
        time.sleep(0.05)


def test_a_store_without_notify_keeps_polling(
    postgres_url: str, reader: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``notify=False`` (what the benchmark's baseline uses): no NOTIFY is sent, no listener is
    started, and followers find other processes' events by polling, as on SQLite."""
    monkeypatch.setattr(runs_module, "POLL_INTERVAL", 0.1)
    quiet = PostgresStore.from_url(postgres_url, notify=False)
    rt = Runtime(reader.settings, store=quiet)
    try:
        quiet.ensure_org(ORG)
        run_id = add_run(quiet)

        async def main() -> None:
            follower = Follower(rt, run_id)
            await asyncio.sleep(0.2)  # a short window in which no listener may start
            assert rt.bus.listener is None and not rt.bus.pushed
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f'LISTEN "{channel_of(postgres_url)}"')
                started = time.monotonic()
                quiet.append_event(ORG, run_id, "tool.result", {})
                assert list(conn.notifies(timeout=0.3)) == []  # nothing announced
            assert await follower.next_after(started, 1) < 0.1 + FAST + 0.3
            await follower.stop()

        asyncio.run(main())
    finally:
        rt.close(wait=True, timeout=10)


# -- the payload format --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ("1 run_x", ("run_x", 1)),
        ("12 a b c", ("a b c", 12)),
        ("3 ", (None, 3)),
        ("", None),
        ("x run", None),
        ("1", None),
        ("-1 run", None),
        ("+1 run", None),
        ("\u0661 run", None),  # an Arabic-Indic digit
        ("1" * 19 + " run", None),
    ],
)
def test_payloads_are_parsed_strictly(payload: str, parsed: object) -> None:
    assert parse_payload(payload) == parsed


def test_long_run_ids_are_left_out_of_the_payload() -> None:
    assert payload_run_id("run_1") == "run_1"
    assert payload_run_id("\U0001f680" * 250) == "\U0001f680" * 250  # 1000 bytes
    assert payload_run_id("\U0001f680" * 251) == ""


class Recorder:
    """A sink that only records what the listener tells it."""

    def __init__(self) -> None:
        self.states: list[bool] = []
        self.wakes: list[tuple[str | None, int]] = []

    def wake(self, run_id: str | None, seq: int) -> None:
        self.wakes.append((run_id, seq))

    def listening(self, up: bool) -> None:
        self.states.append(up)


def refused_url() -> str:
    """A Postgres URL on a loopback port nobody listens on: every connection is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://agent:s3cret@127.0.0.1:{port}/db"


def test_an_unreachable_server_is_retried_quietly(caplog: pytest.LogCaptureFixture) -> None:
    url = refused_url()
    sink = Recorder()
    listener = pg_notify.NotifyListener(url, mask_url(url), sink, connect_timeout=1).start()
    try:
        time.sleep(1.0)  # several attempts, backing off
        assert sink.states == [] and sink.wakes == []
    finally:
        listener.close()
    warnings = [r for r in caplog.records if r.name == pg_notify.__name__]
    assert len(warnings) == 1  # one per outage, not one per attempt
    assert "s3cret" not in caplog.text and "agent:***@" in caplog.text


def test_close_is_prompt_even_in_a_long_back_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """close() wakes the listener out of its wait between attempts. The wait is made 30 to 60 s
    here, so a close that sat it out would take that long, far past the bound below, which in
    turn is far past the milliseconds a prompt close takes even on a busy machine."""
    monkeypatch.setattr(pg_notify, "BACKOFF_MIN", 60.0)
    monkeypatch.setattr(pg_notify, "BACKOFF_MAX", 60.0)
    url = refused_url()
    listener = pg_notify.NotifyListener(url, mask_url(url), Recorder(), connect_timeout=1).start()
    try:
        # The warning comes from the first refused attempt, just before the long wait.
        wait_until(
            "the first refused attempt",
            lambda: any(r.name == pg_notify.__name__ for r in caplog.records),
        )
    finally:
        started = time.monotonic()
        listener.close(timeout=90)
        assert time.monotonic() - started < 10
