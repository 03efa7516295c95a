"""The Queue contract: what every Queue (SQLite, memory; Redis, SQS, Kafka later) must do.

Use it by subclassing with two fixtures::

    class TestSQLiteQueue(QueueContract):
        @pytest.fixture
        def make_queue(self, tmp_path):   # opens another handle on the SAME queue each call
            ...
        @pytest.fixture
        def queue(self, make_queue): return make_queue()

and, for a queue that other processes can open, a ``queue_url`` fixture giving its URL for
``open_queue``. Times are real (a backend with a coarser clock raises ``LEASE``). Tests here use
only the Queue protocol, never a backend's internals.

A test of a capability a backend declares it lacks (``ordered``, ``unique_ids``, ``lease_expiry``)
is skipped with the capability's name; what every backend must do is tested unconditionally.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from agent_sdk.errors import Conflict, InvalidInput, NotFound
from agent_sdk.queue.base import Queue, QueueDepth

HOSTILE: dict[str, Any] = {
    "quotes": 'it\'s "quoted" \\ back\\slash',
    "sql": "'; DROP TABLE jobs; --",
    "unicode": "ünïcödé — 日本語 — 🤖 — عربى",
    "lone surrogate": "\ud800",
    "control": "line\nbreak\ttab\r\x00nul",
    "numbers": [0, -1, 2**53, 1.5e300, True, None],
    "nested": {"a": [{"b": [{"c": ["deep"] * 3}]}] * 3},
    "big": ["x" * 1000] * 300,
}

MakeQueue = Callable[[], Queue]


def _drain(url: str, worker: str, out: Any) -> None:
    """A process's consumer: reserve and ack until the queue stays empty, report the ids."""
    from agent_sdk.queue import open_queue

    q = open_queue(url)
    seen = []
    while (lease := q.reserve(worker, lease=30, timeout=0.5)) is not None:
        seen.append(lease.job.id)
        q.ack(lease)
    q.close()
    out.put(seen)


def _needs(queue: Queue, capability: str) -> None:
    if not getattr(queue, capability):
        pytest.skip(f"{type(queue).__name__} declares {capability}=False")


class QueueContract:
    LEASE: ClassVar[float] = 0.3  # a lease short enough to watch expire
    # How long a job held by a closed consumer may take to reach another one.
    HANDOVER: ClassVar[float] = 5.0

    # -- enqueue and order ---------------------------------------------------------------------
    def test_enqueue_returns_the_job(self, queue: Queue) -> None:
        before = time.time()
        job = queue.enqueue("run", {"run_id": "r1"})
        assert job.kind == "run" and job.payload == {"run_id": "r1"} and job.attempts == 0
        assert before - 1 <= job.enqueued_at <= job.available_at <= time.time() + 1
        assert job.id and job.last_error is None

    def test_ready_jobs_come_out_in_order(self, queue: Queue) -> None:
        _needs(queue, "ordered")
        ids = [queue.enqueue("run", {"n": n}).id for n in range(10)]
        got = []
        while (lease := queue.reserve("w", lease=30, timeout=0)) is not None:
            got.append(lease.job.id)
            assert lease.job.attempts == 1 and lease.worker == "w"
        assert got == ids

    def test_delay_is_honoured(self, queue: Queue) -> None:
        assert queue.supports_delay
        before = time.monotonic()
        late = queue.enqueue("run", {"n": "late"}, delay=1.0)
        early = queue.enqueue("run", {"n": "early"})
        assert late.available_at >= late.enqueued_at + 0.99
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None and lease.job.id == early.id
        lease = queue.reserve("w", lease=30, timeout=0)
        # A busy machine may take the whole delay to get here; only before its end must the
        # late job stay out of reach.
        if time.monotonic() - before < 1.0:
            assert lease is None, "the delayed job was handed out before its delay"
        if lease is None:
            started = time.monotonic()
            lease = queue.reserve("w", lease=30, timeout=30)
            assert time.monotonic() - started < 10  # woken by the delay's end, not the timeout
        assert lease is not None and lease.job.id == late.id

    def test_invalid_jobs_are_refused(self, queue: Queue) -> None:
        with pytest.raises(InvalidInput):
            queue.enqueue("run", {"x": object()})
        with pytest.raises(InvalidInput):
            queue.enqueue("run", ["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            queue.enqueue("run", {}, delay=-1)
        with pytest.raises(InvalidInput):
            queue.enqueue("", {})
        assert queue.depth().total == 0

    def test_hostile_payloads_round_trip(self, queue: Queue) -> None:
        job = queue.enqueue("kind 'with' \"quotes\" 🤖", HOSTILE)
        assert job.payload == HOSTILE
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None
        assert lease.job.payload == HOSTILE and lease.job.kind == job.kind

    def test_payload_is_a_copy(self, queue: Queue) -> None:
        payload: dict[str, Any] = {"items": [1]}
        queue.enqueue("run", payload)
        payload["items"].append(2)
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None and lease.job.payload == {"items": [1]}

    # -- natural keys ----------------------------------------------------------------------------
    def test_enqueue_with_a_job_id_keeps_one_job(self, queue: Queue) -> None:
        _needs(queue, "unique_ids")
        first = queue.enqueue("run", {"v": 1}, job_id="run_123")
        again = queue.enqueue("run", {"v": 2}, job_id="run_123")
        assert again.id == first.id == "run_123" and again.payload == {"v": 1}
        assert queue.depth().ready == 1
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None
        # While leased (and while dead) the id is still taken...
        assert queue.enqueue("run", {"v": 3}, job_id="run_123").attempts == 1
        assert queue.depth() == QueueDepth(ready=0, delayed=0, leased=1, dead=0)
        queue.ack(lease)
        # ... once acknowledged, the job is gone and the id may be used again.
        assert queue.enqueue("run", {"v": 4}, job_id="run_123").payload == {"v": 4}

    def test_parallel_enqueues_of_one_id_keep_one_job(self, make_queue: MakeQueue) -> None:
        queues = [make_queue() for _ in range(4)]
        _needs(queues[0], "unique_ids")
        barrier = threading.Barrier(len(queues))

        def go(q: Queue) -> None:
            barrier.wait()
            q.enqueue("run", {}, job_id="same")

        threads = [threading.Thread(target=go, args=(q,)) for q in queues]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert queues[0].depth().ready == 1

    # -- waiting ---------------------------------------------------------------------------------
    def test_reserve_on_an_empty_queue_waits_and_does_not_spin(self, queue: Queue) -> None:
        assert queue.reserve("w", lease=30, timeout=0) is None
        wall, cpu = time.monotonic(), time.process_time()
        assert queue.reserve("w", lease=30, timeout=0.5) is None
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        assert 0.45 <= wall < 5  # waited its timeout out, and not ten times as long
        assert cpu < 0.15, f"reserve burned {cpu:.3f}s of CPU in {wall:.3f}s: it spins"

    def test_a_waiting_reserve_gets_a_job_enqueued_meanwhile(self, queue: Queue) -> None:
        timer = threading.Timer(0.2, lambda: queue.enqueue("run", {"late": True}))
        timer.start()
        started = time.monotonic()
        lease = queue.reserve("w", lease=30, timeout=30)
        timer.join()
        assert lease is not None and lease.job.payload == {"late": True}
        assert time.monotonic() - started < 5  # woken by the enqueue, not its own timeout

    # -- leases ----------------------------------------------------------------------------------
    def test_an_expired_lease_hands_the_job_to_another_worker(self, queue: Queue) -> None:
        _needs(queue, "lease_expiry")
        queue.enqueue("run", {})
        first = queue.reserve("w1", lease=self.LEASE, timeout=0)
        assert first is not None and first.job.attempts == 1
        assert queue.reserve("w2", lease=30, timeout=0) is None  # still held
        second = queue.reserve("w2", lease=30, timeout=self.LEASE * 5)
        assert second is not None
        assert second.job.id == first.job.id and second.job.attempts == 2
        assert second.token != first.token and second.worker == "w2"
        with pytest.raises(Conflict):
            queue.extend(first, 30)
        with pytest.raises(Conflict):
            queue.ack(first)
        with pytest.raises(Conflict):
            queue.retry(first, 0, "late")
        with pytest.raises(Conflict):
            queue.dead(first, "late")
        queue.ack(second)
        assert queue.depth().total == 0

    def test_a_job_held_by_a_closed_consumer_goes_to_another(self, make_queue: MakeQueue) -> None:
        """At-least-once on every backend: a consumer that goes away holding a job without
        settling it (crashed, or closed) does not lose it; another consumer gets it again."""
        producer = make_queue()
        job = producer.enqueue("run", {"n": 1})
        first_q = make_queue()
        first = first_q.reserve("w1", lease=self.LEASE, timeout=self.HANDOVER)
        assert first is not None and first.job.id == job.id and first.job.attempts == 1
        first_q.close()
        second_q = make_queue()
        second = second_q.reserve("w2", lease=30, timeout=self.HANDOVER + self.LEASE * 5)
        assert second is not None and second.job.id == job.id
        assert second.job.attempts >= 2 and second.token != first.token
        second_q.ack(second)
        assert producer.depth().total == 0

    def test_extend_keeps_the_job_from_being_taken(self, queue: Queue) -> None:
        queue.enqueue("run", {})
        lease = queue.reserve("w1", lease=self.LEASE, timeout=0)
        assert lease is not None
        for _ in range(4):
            time.sleep(self.LEASE / 2)
            lease = queue.extend(lease, self.LEASE)
            assert lease.expires_at >= time.time() + self.LEASE * 0.9
        assert queue.reserve("w2", lease=30, timeout=0) is None
        assert queue.depth().leased == 1
        queue.ack(lease)
        assert queue.depth().total == 0

    def test_an_expired_lease_nobody_took_is_still_honoured(self, queue: Queue) -> None:
        _needs(queue, "lease_expiry")
        queue.enqueue("run", {})
        lease = queue.reserve("w1", lease=0.05, timeout=0)
        assert lease is not None
        time.sleep(0.1)
        assert queue.depth().ready == 1  # takeable by anyone...
        queue.ack(lease)  # ... but still ours until someone takes it
        assert queue.depth().total == 0

    def test_ack_twice_is_a_conflict(self, queue: Queue) -> None:
        queue.enqueue("run", {})
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None
        queue.ack(lease)
        with pytest.raises(Conflict):
            queue.ack(lease)

    # -- retry and dead letters --------------------------------------------------------------------
    def test_retry_after_a_delay_keeps_the_error(self, queue: Queue) -> None:
        queue.enqueue("run", {})
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None
        queue.retry(lease, 0.3, "model timed out")
        assert queue.depth() == QueueDepth(ready=0, delayed=1, leased=0, dead=0)
        assert queue.reserve("w", lease=30, timeout=0) is None
        again = queue.reserve("w", lease=30, timeout=3)
        assert again is not None and again.job.id == lease.job.id
        assert again.job.attempts == 2 and again.job.last_error == "model timed out"
        with pytest.raises(Conflict):
            queue.ack(lease)  # the first lease ended with its retry
        queue.ack(again)

    def test_dead_letter_and_requeue(self, queue: Queue) -> None:
        job = queue.enqueue("run", {"n": 1})
        for attempt in (1, 2):
            lease = queue.reserve("w", lease=30, timeout=0)
            assert lease is not None and lease.job.attempts == attempt
            if attempt == 1:
                queue.retry(lease, 0, "first error")
        queue.dead(lease, "last error")
        assert queue.depth() == QueueDepth(ready=0, delayed=0, leased=0, dead=1)
        assert queue.reserve("w", lease=30, timeout=0) is None
        (dead,) = queue.list_dead(10)
        assert dead.job.id == job.id and dead.error == "last error"
        assert dead.job.attempts == 2 and dead.job.payload == {"n": 1}
        assert dead.died_at >= job.enqueued_at
        with pytest.raises(Conflict):
            queue.ack(lease)
        back = queue.requeue_dead(job.id)
        assert back.id == job.id and back.attempts == 0
        assert queue.list_dead(10) == []
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None and lease.job.attempts == 1
        assert lease.job.last_error == "last error"
        queue.ack(lease)

    def test_requeue_dead_refuses_unknown_and_live_jobs(self, queue: Queue) -> None:
        with pytest.raises(NotFound):
            queue.requeue_dead("job_nope")
        job = queue.enqueue("run", {})
        # Conflict where the queue can see the live job; NotFound where it can only search its
        # dead letters (SQS has no lookup by id). Either way the live job is left as it was.
        with pytest.raises((Conflict, NotFound)):
            queue.requeue_dead(job.id)
        assert queue.depth().ready == 1
        lease = queue.reserve("w", lease=30, timeout=0)
        assert lease is not None and lease.job.id == job.id and lease.job.attempts == 1

    def test_list_dead_newest_first_and_limited(self, queue: Queue) -> None:
        for n in range(3):
            queue.enqueue("run", {"n": n})
            lease = queue.reserve("w", lease=30, timeout=0)
            assert lease is not None
            queue.dead(lease, f"error {n}")
            time.sleep(0.01)
        assert [d.error for d in queue.list_dead(2)] == ["error 2", "error 1"]
        with pytest.raises(InvalidInput):
            queue.list_dead(0)

    def test_depth_counts_every_state(self, queue: Queue) -> None:
        assert queue.depth() == QueueDepth(0, 0, 0, 0)
        for n in range(3):
            queue.enqueue("run", {"n": n})
        queue.enqueue("run", {}, delay=60)
        leased = queue.reserve("w", lease=30, timeout=0)
        dying = queue.reserve("w", lease=30, timeout=0)
        assert leased is not None and dying is not None
        queue.dead(dying, "boom")
        assert queue.depth() == QueueDepth(ready=1, delayed=1, leased=1, dead=1)
        assert queue.depth().total == 4

    # -- many consumers --------------------------------------------------------------------------
    def test_threads_get_each_job_exactly_once(self, make_queue: MakeQueue) -> None:
        producer = make_queue()
        ids = {producer.enqueue("run", {"n": n}).id for n in range(200)}
        got: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def consume(name: str) -> None:
            q = make_queue()
            try:
                while (lease := q.reserve(name, lease=30, timeout=0.3)) is not None:
                    with lock:
                        got.append(lease.job.id)
                    q.ack(lease)
            except BaseException as exc:  # surfaced below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(got) == 200 and set(got) == ids
        assert producer.depth().total == 0

    def test_processes_get_each_job_exactly_once(self, queue: Queue, queue_url: str | None) -> None:
        if queue_url is None:
            pytest.skip("this queue cannot be opened from another process")
        ids = {queue.enqueue("run", {"n": n}).id for n in range(200)}
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_drain, args=(queue_url, f"p{i}", out)) for i in range(2)]
        for p in procs:
            p.start()
        seen = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        got = [job_id for chunk in seen for job_id in chunk]
        assert len(got) == 200 and set(got) == ids
        assert queue.depth().total == 0

    @pytest.fixture
    def queue_url(self) -> str | None:
        return None
