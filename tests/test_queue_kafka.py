"""The Kafka queue: the Queue contract on librdkafka's mock cluster (real brokers on loopback,
run inside this process; a fresh topic and consumer group per test), plus what only Kafka has:
commits that stop at the lowest unsettled offset, handover through commit metadata, consumers
that die, records that are not jobs, URLs, settings and errors."""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import require_module
from contracts.queue_contract import MakeQueue, QueueContract

from agent_sdk.config import Settings
from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput, NotFound
from agent_sdk.queue import open_queue, queue_from_settings
from agent_sdk.queue._kafka_state import METADATA_LIMIT, CommitMarks, PartitionState
from agent_sdk.queue.base import Queue, QueueDepth

ck = require_module("confluent_kafka", "Kafka (librdkafka's mock cluster)")
from agent_sdk.queue import _kafka_group  # noqa: E402
from agent_sdk.queue.kafka import DEFAULT_TOPIC, KafkaQueue  # noqa: E402

# librdkafka's mock cluster, like a real one, takes a dead classic-protocol member out of the
# group after its session timeout; short here so a test of a crash takes seconds.
CLASSIC = "group.protocol=classic&session.timeout.ms=4500&heartbeat.interval.ms=500"


@dataclass
class MockCluster:
    holder: Any  # the client that runs the mock brokers: they live as long as it does
    servers: str

    def topic(self) -> str:
        """A fresh topic with its retry and dead-letter topics (the mock cluster creates them
        on a producer's metadata request; it has no CreateTopics)."""
        name = "jobs-" + secrets.token_hex(6)
        for topic in (name, name + ".retry", name + ".dead"):
            self.holder.list_topics(topic=topic, timeout=10)
        return name


@pytest.fixture(scope="module")
def mock_cluster() -> Iterator[MockCluster]:
    holder = ck.Producer(
        {"test.mock.num.brokers": 1, "logger": logging.getLogger("tests.kafka.mock")}
    )
    meta = holder.list_topics(timeout=10)
    servers = ",".join(f"{b.host}:{b.port}" for b in meta.brokers.values())
    yield MockCluster(holder, servers)
    holder.flush(1)


@pytest.fixture
def topic(mock_cluster: MockCluster) -> str:
    return mock_cluster.topic()


@pytest.fixture
def url(mock_cluster: MockCluster, topic: str) -> str:
    return f"kafka://{mock_cluster.servers}/{topic}"


@pytest.fixture
def opened() -> Iterator[list[KafkaQueue]]:
    queues: list[KafkaQueue] = []
    yield queues
    for q in queues:
        q.close()


class TestKafkaQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, url: str, opened: list[KafkaQueue]) -> MakeQueue:
        def make() -> Queue:
            opened.append(KafkaQueue(url))
            return opened[-1]

        return make

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue()

    @pytest.fixture
    def queue_url(self, url: str) -> str:
        return url


# -- commits and handover -------------------------------------------------------------------------


def _committed(servers: str, group: str, topic: str) -> dict[int, tuple[int, str | None]]:
    reader = ck.Consumer({"bootstrap.servers": servers, "group.id": group})
    try:
        got = reader.committed([ck.TopicPartition(topic, p) for p in range(4)], timeout=10)
    finally:
        reader.close()
    return {tp.partition: (tp.offset, tp.metadata) for tp in got}


def _two_on_one_partition(q: KafkaQueue) -> tuple[Any, Any]:
    """Two jobs on one partition: the same id is the same key (the queue keeps no unique ids)."""
    q.enqueue("run", {"n": 1}, job_id="same")
    q.enqueue("run", {"n": 2}, job_id="same")
    first = q.reserve("w", lease=30, timeout=5)
    second = q.reserve("w", lease=30, timeout=5)
    assert first is not None and second is not None
    assert [first.job.payload["n"], second.job.payload["n"]] == [1, 2]
    return first, second


def test_commits_stop_at_the_lowest_unsettled_offset(
    mock_cluster: MockCluster, url: str, topic: str, opened: list[KafkaQueue]
) -> None:
    q = KafkaQueue(url)
    opened.append(q)
    first, second = _two_on_one_partition(q)
    committed = _committed(mock_cluster.servers, q.group, topic)
    (partition,) = [p for p, (offset, _) in committed.items() if offset >= 0]
    q.ack(second)
    offset, metadata = _committed(mock_cluster.servers, q.group, topic)[partition]
    assert offset == 0, "the ack of offset 1 must not commit past the unsettled offset 0"
    marks = CommitMarks.decode(metadata, 0)
    assert marks.settled == {1} and marks.leased == {0: 1}
    assert q.depth() == QueueDepth(ready=0, delayed=0, leased=1, dead=0)
    with pytest.raises(Conflict):  # leased, not dead
        q.requeue_dead("same")
    q.ack(first)
    offset, metadata = _committed(mock_cluster.servers, q.group, topic)[partition]
    assert offset == 2 and CommitMarks.decode(metadata, 2) == CommitMarks()
    assert q.depth().total == 0
    with pytest.raises(NotFound):  # both acknowledged: gone
        q.requeue_dead("same")


def test_the_next_owner_skips_settled_jobs_and_counts_attempts(
    url: str, opened: list[KafkaQueue]
) -> None:
    q = KafkaQueue(url)
    opened.append(q)
    first, second = _two_on_one_partition(q)
    q.ack(second)  # settled above the commit point: only the metadata remembers it
    q.close()  # leaves the group holding the first job
    other = KafkaQueue(url)
    opened.append(other)
    again = other.reserve("w2", lease=30, timeout=10)
    assert again is not None and again.job.payload == {"n": 1} and again.job.attempts == 2
    assert other.reserve("w2", lease=30, timeout=0.5) is None  # the acked one stays done
    other.ack(again)
    assert other.depth().total == 0


@pytest.mark.slow  # waits on a rebalance
def test_a_partition_that_moves_takes_its_leases_along(url: str, opened: list[KafkaQueue]) -> None:
    """A second consumer joins while the first holds a lease on every job: the partitions the
    group moves to it take their jobs along (attempt 2 there, Conflict for the first holder);
    the leases on partitions that stayed are still good."""
    first = KafkaQueue(url)
    opened.append(first)
    for n in range(24):
        first.enqueue("run", {"n": n})
    held = [first.reserve("a", lease=30, timeout=5) for _ in range(24)]
    leases = [lease for lease in held if lease is not None]
    assert len(leases) == 24
    second = KafkaQueue(url)
    opened.append(second)
    taken: list[Any] = []
    stop = threading.Event()

    def take() -> None:
        while not stop.is_set():
            lease = second.reserve("b", lease=30, timeout=0.2)
            if lease is not None:
                taken.append(lease)

    thread = threading.Thread(target=take)
    thread.start()
    lost: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lost and len(taken) >= len(lost)):
            time.sleep(0.1)
            for lease in [x for x in leases if x not in lost]:
                try:
                    first.extend(lease, 30)  # the heartbeat also serves the revocation
                except Conflict:
                    lost.append(lease)
    finally:
        stop.set()
        thread.join()
    assert lost, "the group moved no partition with a leased job to the new consumer"
    assert sorted(x.job.id for x in taken) == sorted(x.job.id for x in lost)
    assert all(x.job.attempts == 2 for x in taken)
    with pytest.raises(Conflict):
        first.ack(lost[0])
    for lease in leases:
        if lease not in lost:
            first.ack(lease)
    for lease in taken:
        second.ack(lease)
    assert first.depth().total == 0


def _reserve_and_die(url: str, ready: Any) -> None:
    q = open_queue(url)
    lease = q.reserve("doomed", lease=30, timeout=30)
    ready.put(lease.job.id if lease is not None else None)
    ready.close()
    ready.join_thread()  # the id is on its way before the process vanishes
    os._exit(1)  # no close, no LeaveGroup: the group notices only when the session times out


@pytest.mark.slow
def test_a_job_held_by_a_consumer_that_died_goes_to_another(mock_cluster: MockCluster) -> None:
    topic = mock_cluster.topic()
    url = f"kafka://{mock_cluster.servers}/{topic}?{CLASSIC}"
    q = KafkaQueue(url)
    try:
        job = q.enqueue("run", {"n": 1})
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        proc = ctx.Process(target=_reserve_and_die, args=(url, ready))
        proc.start()
        assert ready.get(timeout=60) == job.id
        proc.join(30)
        assert proc.exitcode == 1
        started = time.monotonic()
        lease = q.reserve("survivor", lease=30, timeout=30)
        assert lease is not None and lease.job.id == job.id and lease.job.attempts == 2
        assert time.monotonic() - started < 25
        q.ack(lease)
        assert q.depth().total == 0
    finally:
        q.close()


# -- hostile records -----------------------------------------------------------------------------


def test_records_that_are_not_jobs_go_to_the_dead_letters(
    mock_cluster: MockCluster, url: str, topic: str, opened: list[KafkaQueue]
) -> None:
    raw = ck.Producer({"bootstrap.servers": mock_cluster.servers})
    raw.produce(topic, key=b"\xff\xfe", value=b"\x00\xff not json at all")
    raw.produce(topic, key=b"foreign", value=b'{"id": "x", "kind": "run", "payload": {}}')
    raw.produce(topic, key=b"empty", value=None)
    raw.produce(topic + ".dead", key=b"\xc3\x28", value=b"[1, 2")  # not UTF-8, not JSON
    assert raw.flush(10) == 0
    q = KafkaQueue(url)
    opened.append(q)
    job = q.enqueue("run", {"real": True})
    lease = q.reserve("w", lease=30, timeout=5)
    assert lease is not None and lease.job.id == job.id
    assert q.reserve("w", lease=30, timeout=0.5) is None
    q.ack(lease)
    dead = q.list_dead(10)
    assert len(dead) == 4 and {d.job.kind for d in dead} == {"unreadable"}
    assert all(d.error.startswith("unreadable record") for d in dead)
    assert q.depth() == QueueDepth(ready=0, delayed=0, leased=0, dead=4)
    for letter in dead:  # nothing a worker could run
        with pytest.raises(Conflict, match="not a job"):
            q.requeue_dead(letter.job.id)


def test_a_job_too_large_for_a_record_is_refused(url: str, opened: list[KafkaQueue]) -> None:
    q = KafkaQueue(url)
    opened.append(q)
    with pytest.raises(InvalidInput, match="too large"):
        q.enqueue("run", {"blob": "x" * 2_000_000})
    assert q.depth().total == 0


def test_reading_ahead_of_delayed_jobs_is_capped(
    url: str, opened: list[KafkaQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_HELD not-yet-due jobs the consumer stops reading the retry topic, and reads on
    once they went out: none is lost or delivered twice."""
    monkeypatch.setattr(_kafka_group, "MAX_HELD", 2)
    q = KafkaQueue(url)
    opened.append(q)
    ids = {q.enqueue("run", {"n": n}, job_id=f"j{n}", delay=0.6).id for n in range(6)}
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 6 and time.monotonic() < deadline:
        lease = q.reserve("w", lease=30, timeout=1)
        if lease is not None:
            got.append(lease.job.id)
            assert lease.job.available_at <= time.time()
            q.ack(lease)
    assert sorted(got) == sorted(ids)
    assert q.reserve("w", lease=30, timeout=0.3) is None


# -- topics, URLs, settings, errors ----------------------------------------------------------------


def test_missing_topics_are_created(mock_cluster: MockCluster, opened: list[KafkaQueue]) -> None:
    name = "fresh-" + secrets.token_hex(6)
    # The mock cluster has no CreateTopics: this goes through the brokers' auto-creation.
    q = KafkaQueue(f"kafka://{mock_cluster.servers}/{name}", timeout=1)
    opened.append(q)
    meta = mock_cluster.holder.list_topics(timeout=10)
    assert {name, name + ".retry", name + ".dead"} <= set(meta.topics)
    job = q.enqueue("run", {})
    lease = q.reserve("w", lease=30, timeout=5)
    assert lease is not None and lease.job.id == job.id


def test_open_queue_and_url_options(mock_cluster: MockCluster, topic: str) -> None:
    q = open_queue(f"kafka://{mock_cluster.servers}/{topic}?group.id=billing&partitions=3")
    try:
        assert isinstance(q, KafkaQueue)
        assert (q.topic, q.retry_topic, q.dead_topic) == (topic, topic + ".retry", topic + ".dead")
        assert q.group == "billing" and "billing" in repr(q)
    finally:
        q.close()
    default = KafkaQueue(f"kafka://{mock_cluster.servers}/{topic}")
    assert default.group == topic + ".workers"
    default.close()


@pytest.mark.parametrize(
    "bad",
    [
        "kafka:///jobs",  # no brokers
        "kafka://h:9092,/jobs",  # an empty broker in the list
        "kafka://h:9092/bad topic name",
        "kafka://h:9092/" + "x" * 250,
        "kafka://h:9092/jobs?partitions=0",
        "kafka://h:9092/jobs?partitions=lots",
        "kafka://h:9092/jobs?groupid=x",  # not partitions, and no dot: a typo, not a property
        "redis://h:9092/jobs",
    ],
)
def test_bad_urls_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        KafkaQueue(bad, timeout=0.5)


def test_an_unknown_client_property_is_a_config_error(mock_cluster: MockCluster) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaQueue(f"kafka://{mock_cluster.servers}/jobs?no.such.property=1", timeout=1)
    assert "no.such.property" in info.value.message


def test_queue_from_settings(settings: Settings, mock_cluster: MockCluster, topic: str) -> None:
    base = settings.replace(queue_backend="kafka", kafka_bootstrap_servers=mock_cluster.servers)
    assert base.queue.kafka.topic == DEFAULT_TOPIC
    q = queue_from_settings(base.replace(kafka_topic=topic))
    assert isinstance(q, KafkaQueue) and q.topic == topic
    q.close()
    as_url = f"kafka://{mock_cluster.servers}?group.id=from-url"
    q = queue_from_settings(base.replace(kafka_bootstrap_servers=as_url, kafka_topic=topic))
    assert isinstance(q, KafkaQueue) and q.topic == topic and q.group == "from-url"
    q.close()
    with pytest.raises(ConfigError) as info:
        queue_from_settings(base.replace(kafka_bootstrap_servers=None))
    assert "AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS" in info.value.message


def test_settings_come_from_the_environment(tmp_path: Any) -> None:
    from agent_sdk.config import load_settings

    env = {
        "AGENT_SDK_QUEUE_BACKEND": "kafka",
        "AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "AGENT_SDK_KAFKA_TOPIC": "runs",
        "HOME": str(tmp_path),
    }
    s = load_settings(env=env, cwd=tmp_path)
    assert (s.queue.backend, s.queue.kafka.bootstrap_servers, s.queue.kafka.topic) == (
        "kafka",
        "k1:9092,k2:9092",
        "runs",
    )


def test_unreachable_brokers_name_the_address_without_the_password() -> None:
    # Port 1 on loopback: nothing listens there, every connection is refused at once.
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        KafkaQueue(
            "kafka://ops:hunter2@127.0.0.1:1/jobs?security.protocol=SASL_PLAINTEXT", timeout=0.2
        )
    # Within the short timeout given (about 0.3 s when quiet), not the 10 s default.
    assert time.monotonic() - started < 3
    text = info.value.message + (info.value.hint or "")
    assert "127.0.0.1:1" in text and "ops:***@" in text and "hunter2" not in text
    assert "\n" not in info.value.message


def test_a_missing_confluent_kafka_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ConfigError) as info:
        KafkaQueue("kafka://127.0.0.1:9092/jobs")
    assert info.value.hint == "pip install 'agent-sdk[kafka]'"


def test_a_closed_queue_refuses_work(url: str) -> None:
    q = KafkaQueue(url)
    q.close()
    q.close()  # twice is fine
    with pytest.raises(BackendUnavailable):
        q.enqueue("run", {})
    with pytest.raises(BackendUnavailable):
        q.reserve("w", lease=30, timeout=0)


# -- the bookkeeping alone -------------------------------------------------------------------------


def test_commit_point_and_marks_follow_the_lowest_unsettled_offset() -> None:
    part = PartitionState()
    part.load(CommitMarks(leased={7: 1}, settled={9}), floor=5)
    assert part.read(5) == (True, None) and part.read(6) == (True, None)
    part.leased[5] = 1
    part.waiting.add(6)
    assert part.read(7) == (True, 1)  # a previous owner handed 7 out once
    assert part.read(9) == (False, None)  # ... and settled 9: skipped
    assert part.read(6) == (False, None)  # a repeat
    part.settled.add(7)
    assert part.commit_point() == 5
    part.leased.pop(5)
    part.settled.add(5)
    assert part.commit_point() == 6
    marks = part.marks(6)
    assert marks.settled == {7, 9} and marks.leased == {}
    assert CommitMarks.decode(marks.encode(), 6) == marks
    assert CommitMarks.decode(marks.encode(), 8).settled == {9}


@pytest.mark.parametrize("text", ["", "{", "[]", '{"l": [[1]]}', '{"s": "x"}', '{"l": {"a": 1}}'])
def test_unreadable_commit_metadata_means_no_marks(text: str) -> None:
    assert CommitMarks.decode(text, 0) == CommitMarks()


def test_corrupt_commit_metadata_cannot_fill_the_memory() -> None:
    marks = CommitMarks.decode('{"l": [], "s": [[0, 1000000000000], [5, 10000000]]}', 0)
    assert len(marks.settled) <= 100_000


def test_commit_metadata_stays_under_the_brokers_limit() -> None:
    marks = CommitMarks(leased={n: 3 for n in range(0, 4000, 2)}, settled=set(range(1, 9000, 2)))
    text = marks.encode()
    assert len(text) <= METADATA_LIMIT
    kept = CommitMarks.decode(text, 0)
    assert kept.leased and all(marks.leased[o] == a for o, a in kept.leased.items())
    assert min(kept.leased) == 0  # the lowest ones are kept, the highest dropped first
