"""The Kafka queue: a topic of jobs read by one consumer group, through confluent-kafka.

``AGENT_SDK_QUEUE_BACKEND=kafka`` with ``AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS=host:9092`` and
``AGENT_SDK_KAFKA_TOPIC=agent-sdk-jobs``, or ``open_queue("kafka://host:9092/agent-sdk-jobs")``.

Three topics serve one queue:

* ``<topic>``: jobs ready now, keyed by job id (every copy of one id lands on one partition).
* ``<topic>.retry``: jobs held back (``enqueue(delay=...)``, ``retry(delay > 0)``); each record
  carries its ``available_at``.
* ``<topic>.dead``: dead letters, keyed by job id, compacted. ``requeue_dead`` produces the job
  to ``<topic>`` again, then a tombstone for its key, which takes it out of ``list_dead`` (job
  first: a crash in between leaves a duplicate, never a loss). Records on the job topics that
  are not jobs of this queue land here too, with an error saying so, and cannot be requeued.

How the Queue protocol maps onto a consumer group (details in :mod:`._kafka_group` and
:mod:`._kafka_state`):

* ``reserve`` joins the group on first use and polls one record at a time. A record not due yet
  is held in memory and the member reads on past it.
* ``ack``, ``retry`` and ``dead`` commit synchronously, but a partition's commit only advances to
  its lowest unsettled offset. The commit's metadata lists the offsets above that point handed
  out to workers (with their attempt) and those already settled; ``reserve`` records each lease
  that way before returning it. A member taking a partition over skips the settled offsets and
  counts the earlier attempt of the leased ones: a job a dead consumer held comes back with
  ``attempts`` raised, and jobs it finished are not run again.
* No lease expiry (``lease_expiry=False``): Kafka has no per-record lease. A job moves when its
  partition does: its consumer closed, stopped polling for ``max.poll.interval.ms``, or stopped
  heartbeating for the group's session timeout. ``extend`` checks the partition is still owned
  (Conflict otherwise) and polls, so a process whose workers are all busy stays in the group.
* No natural keys (``unique_ids=False``): a second ``enqueue`` of an id adds a second record;
  the worker copes, since the run's state in the store says what is left to do.
* ``depth`` reads the group's committed offsets and metadata against the partitions' ends (and
  the retry topic's pending records, to split ready from delayed); jobs leased by a consumer that
  died count as leased until the group hands their partition on.

Ordering, and what it means for delays and retries. Kafka orders records only within a
partition, and a partition belongs to one consumer at a time. So:

* Jobs spread over partitions by id; across partitions there is no order (``ordered=False``).
* A job waits for the consumer that owns its partition, even while others are idle. A long job
  does not hold back the jobs behind it (its consumer reads ahead) but pins the partition's
  commit until settled: after a crash the new owner reads from there again, skipping what the
  metadata marks as settled. Keep at least as many partitions as worker processes.
* Delays cannot reorder a partition, hence the separate retry topic: a retry never blocks the
  partition it came from. Within the retry topic a job due in an hour may sit in front of one
  due in a second; the owner reads past records not yet due and holds up to ``MAX_HELD`` of
  them, so shorter delays behind a long one still come out on time. Past that many it stops
  reading the retry partitions (head-of-line blocking) until held jobs fall due. A held job
  also pins its retry partition's commit, like a long job.
* Times are the producing process's clock (``time.time()``): skewed clocks skew delays.
* A consumer that stops calling ``reserve`` keeps its partitions until ``max.poll.interval.ms``
  fences it; while the group is still handing out partitions (for ``SETTLE`` seconds after a
  change), ``reserve`` may wait past its timeout rather than leave them unread.

Group protocol: ``group.protocol=consumer`` (KIP-848: incremental, assigned by the brokers;
Kafka 4.0 or later) by default; ``?group.protocol=classic`` for older brokers, where the
assignment strategy defaults to ``cooperative-sticky``. Query parameters with a dot are passed
to librdkafka as they are (``security.protocol``, ``ssl.ca.location``, ``group.id``, ...).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from agent_sdk.errors import BackendUnavailable, BadRecord, ConfigError, Conflict, InvalidInput
from agent_sdk.masking import mask_url
from agent_sdk.queue._kafka_group import MAX_HELD, SETTLE, GroupMember
from agent_sdk.queue._kafka_reader import SideReader
from agent_sdk.queue._kafka_state import (
    UNREADABLE,
    decode_job,
    encode_job,
    encode_key,
    payload_text,
)
from agent_sdk.queue.base import BaseQueue, DeadJob, Job, Lease, QueueDepth, lease_lost, new_job

if TYPE_CHECKING:
    from agent_sdk.config import Settings

DEFAULT_TOPIC = "agent-sdk-jobs"
DEFAULT_PARTITIONS = 6
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,243}$")
# Consumer properties a URL may carry that the producer and admin clients would warn about.
_CONSUMER_ONLY = (
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "auto.commit.",
    "enable.auto.",
    "enable.partition.eof",
    "fetch.",
    "isolation.level",
    "queued.",
)


def _import_kafka() -> Any:
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the Kafka queue needs the confluent-kafka package, which is not installed",
            hint="pip install 'agent-sdk[kafka]'",
        ) from None
    return confluent_kafka


class KafkaQueue(BaseQueue):
    durable: ClassVar[bool] = True  # acks=all, idempotent producer: as durable as the topics
    ordered: ClassVar[bool] = False  # within a partition only
    unique_ids: ClassVar[bool] = False
    lease_expiry: ClassVar[bool] = False
    scheme: ClassVar[str] = "kafka"
    waits: ClassVar[bool] = True  # the group member polls for records

    def __init__(
        self,
        url: str,
        *,
        topic: str | None = None,
        partitions: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Connect (``timeout`` bounds each request) and create missing topics with
        ``partitions`` partitions (default: the URL's ``partitions=``, else 6)."""
        self._kafka = kafka = _import_kafka()
        servers, user, password, url_topic, options = _parse_url(url)
        self.topic = topic or url_topic or DEFAULT_TOPIC
        if not _TOPIC_NAME.fullmatch(self.topic):
            raise ConfigError(
                f"invalid Kafka topic name {self.topic!r}",
                hint="letters, digits, '.', '_' and '-', at most 243 characters",
            )
        self.retry_topic = self.topic + ".retry"
        self.dead_topic = self.topic + ".dead"
        self.url = mask_url(f"kafka://{urlsplit(url).netloc}/{self.topic}")
        self._hide(url)
        self._partitions = partitions or _positive("partitions", options.pop("partitions", None))
        self._timeout = timeout
        common: dict[str, Any] = {
            "bootstrap.servers": servers,
            "logger": logging.getLogger("agent_sdk.queue.kafka.librdkafka"),
        }
        if user:
            common.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"})
            common.update({"sasl.username": user, "sasl.password": password})
        common.update(options)
        self.group = str(common.pop("group.id", None) or self.topic + ".workers")
        self._member_config = common  # the group member's; the other clients take the rest
        common = {k: v for k, v in common.items() if not k.startswith(_CONSUMER_ONLY)}
        self._member: GroupMember | None = None
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._admin = kafka.admin.AdminClient(common)
            self._producer = kafka.Producer(
                {
                    **common,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    "message.timeout.ms": max(1000, int(timeout * 1000)),
                }
            )
        except (kafka.KafkaException, ValueError, TypeError) as exc:
            text = self._scrub(_words(exc))
            raise ConfigError(f"invalid Kafka settings for {self.url}: {text}") from None
        self._side = SideReader(
            kafka,
            self._admin,
            {
                **common,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,  # a range read ends with a wait this long
            },
            timeout=timeout,
            error=self._error,
        )
        self._ensure_topics()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaQueue:
        """``kafka://[user:password@]host:9092[,host2:9092]/topic[?group.id=...&partitions=6]``."""
        return cls(url, **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaQueue:
        """AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS (``host:9092,...`` or a ``kafka://`` URL whose query
        carries client options) and AGENT_SDK_KAFKA_TOPIC."""
        servers = settings.kafka_bootstrap_servers
        if not servers:
            raise ConfigError(
                "AGENT_SDK_QUEUE_BACKEND=kafka needs AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS",
                hint="e.g. AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS=kafka-1.internal:9092",
            )
        url = servers if "://" in servers else f"kafka://{servers}"
        return cls.from_url(url, topic=settings.kafka_topic)

    def __repr__(self) -> str:
        return f"KafkaQueue({self.url!r}, group={self.group!r})"

    # -- errors ------------------------------------------------------------------------------------
    def _error(self, doing: str, exc: BaseException | str) -> BackendUnavailable:
        return self._outage(
            f"Kafka queue {self.topic!r} at {self.url} failed {doing}: {_words(exc)}",
            hint="check AGENT_SDK_KAFKA_BOOTSTRAP_SERVERS and that the brokers are running",
        )

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(f"Kafka queue {self.topic!r} at {self.url} was closed")

    # -- topics ------------------------------------------------------------------------------------
    def _ensure_topics(self) -> None:
        """Connect (one bounded metadata request), then create the topics that are missing:
        through the admin API, else by the brokers' auto-creation where they allow it."""
        kafka = self._kafka
        failures: list[str] = []
        try:
            missing = self._missing([self.topic, self.retry_topic, self.dead_topic])
            if not missing:
                return
            new = [
                kafka.admin.NewTopic(
                    name,
                    num_partitions=self._partitions,
                    config={"cleanup.policy": "compact"} if name == self.dead_topic else {},
                )
                for name in missing
            ]
            created = self._admin.create_topics(new, request_timeout=self._timeout)
            for name, future in created.items():
                try:
                    future.result()
                except kafka.KafkaException as exc:
                    if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                        failures.append(f"{name}: {exc.args[0].str()}")
            for name in self._missing(missing):
                self._producer.list_topics(topic=name, timeout=self._timeout)
            missing = self._missing(missing)
        except kafka.KafkaException as exc:
            raise self._error("to connect", exc) from None
        if missing:
            raise ConfigError(
                f"Kafka topics {', '.join(missing)} do not exist and could not be created"
                + (f" ({'; '.join(failures)})" if failures else ""),
                hint="create them (the .dead one compacted), or grant this client CreateTopics",
            )

    def _missing(self, names: list[str]) -> list[str]:
        meta = self._admin.list_topics(timeout=self._timeout)
        self._admin.poll(0)  # hands its log lines to logging
        return [n for n in names if n not in meta.topics or meta.topics[n].error is not None]

    # -- producing ---------------------------------------------------------------------------------
    def _produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Send one record and wait until the brokers acknowledged it (acks=all)."""
        kafka = self._kafka
        outcome: list[Any] = []

        def report(err: Any, _msg: Any) -> None:
            outcome.append(err)

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=report)
        except BufferError:
            raise self._error("to send", "the local send queue is full") from None
        except kafka.KafkaException as exc:
            raise self._send_error(exc.args[0]) from None
        deadline = time.monotonic() + self._timeout + 1
        while not outcome and time.monotonic() < deadline:
            self._producer.poll(0.05)  # returns as soon as a delivery report is served
        if not outcome:
            raise self._error("to send", "the brokers did not acknowledge the record in time")
        if outcome[0] is not None:
            raise self._send_error(outcome[0])

    def _send_error(self, err: Any) -> Exception:
        if err.code() == self._kafka.KafkaError.MSG_SIZE_TOO_LARGE:
            return InvalidInput(f"the job is too large for a Kafka record: {err.str()}")
        return self._error("to send", err.str())

    def _bury(self, job: Job, error: str) -> None:
        now = time.time()
        value = encode_job(job, payload_text(job.payload), error=error, died_at=now)
        self._produce(self.dead_topic, encode_key(job.id), value)

    # -- the group member --------------------------------------------------------------------------
    def _join(self) -> GroupMember:
        with self._lock:
            self._check_open()
            if self._member is not None:
                return self._member
            kafka = self._kafka
            config = {
                "group.protocol": "consumer",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,  # idle fetches; new records answer a fetch at once
                **self._member_config,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
            if str(config["group.protocol"]).lower() == "classic":
                config.setdefault("partition.assignment.strategy", "cooperative-sticky")
            try:
                self._member = GroupMember(
                    kafka,
                    config,
                    topic=self.topic,
                    retry_topic=self.retry_topic,
                    side=self._side,
                    bury=self._bury,
                    error=self._error,
                    timeout=self._timeout,
                )
            except (kafka.KafkaException, ValueError, TypeError) as exc:
                text = self._scrub(_words(exc))
                raise ConfigError(
                    f"invalid Kafka consumer settings for {self.url}: {text}"
                ) from None
            return self._member

    def _holder(self, lease: Lease) -> GroupMember:
        self._check_open()
        if self._member is None:  # this handle never reserved: the lease is not its own
            raise lease_lost(lease)
        return self._member

    # -- the protocol ------------------------------------------------------------------------------
    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        now = time.time()
        job = new_job(job_id, kind, text, now, now + delay)
        topic = self.retry_topic if delay > 0 else self.topic
        self._produce(topic, encode_key(job.id), encode_job(job, text))
        return job

    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        return self._join().reserve(worker, lease, wait)

    def _extend(self, lease: Lease, seconds: float) -> float:
        self._holder(lease).keep(lease)
        return time.time() + seconds

    def _ack(self, lease: Lease) -> bool:
        self._holder(lease).settle(lease)
        return True

    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        member = self._holder(lease)
        job = member.holding(lease)
        again = dataclasses.replace(job, available_at=time.time() + delay, last_error=error)
        topic = self.retry_topic if delay > 0 else self.topic
        self._produce(topic, encode_key(job.id), encode_job(again, payload_text(job.payload)))
        member.settle(lease)
        return True

    def _dead(self, lease: Lease, error: str) -> bool:
        member = self._holder(lease)
        self._bury(dataclasses.replace(member.holding(lease), last_error=error), error)
        member.settle(lease)
        return True

    def depth(self) -> QueueDepth:
        self._check_open()
        ready = leased = delayed = 0
        for pending in self._side.pending(self.topic):
            ready += pending.unmarked()
            leased += pending.leased()
        retry = self._side.pending(self.retry_topic)
        marks = {p.tp: p.marks for p in retry}
        leased += sum(p.leased() for p in retry)
        now = time.time()
        for msg in self._side.read({p.tp: (p.floor, p.high) for p in retry}):
            mark = marks[(msg.topic(), msg.partition())]
            if msg.offset() in mark.leased or msg.offset() in mark.settled:
                continue
            try:
                job, _ = decode_job(msg.value())
            except BadRecord:  # not a job: a consumer sends it to the dead letters at once
                ready += 1
                continue
            if job.available_at > now:
                delayed += 1
            else:
                ready += 1
        dead = len(self._side.dead_letters(self.dead_topic))
        return QueueDepth(ready=ready, delayed=delayed, leased=leased, dead=dead)

    def _list_dead(self, limit: int) -> list[DeadJob]:
        self._check_open()
        dead = self._side.dead_letters(self.dead_topic).values()
        return sorted(dead, key=lambda d: d.died_at, reverse=True)[:limit]

    def _requeue(self, job_id: str) -> Job | str | None:
        self._check_open()
        found = self._side.dead_letters(self.dead_topic).get(job_id)
        if found is None:
            return "queued or leased" if self._is_pending(job_id) else None
        if found.error.startswith(UNREADABLE):
            raise Conflict(
                f"dead letter {job_id} is a record that is not a job of this queue",
                hint=f"inspect it with list_dead; it stays in {self.dead_topic}",
            )
        job = dataclasses.replace(
            found.job, attempts=0, available_at=time.time(), last_error=found.error
        )
        key = encode_key(job_id)
        self._produce(self.topic, key, encode_job(job, payload_text(job.payload)))
        self._produce(self.dead_topic, key, None)  # the tombstone: dead no more
        self._side.forget_dead(job_id)
        return job

    def _is_pending(self, job_id: str) -> bool:
        """Whether a record of ``job_id`` waits (or is leased) on the job or retry topic: a
        scan of the unsettled part of every partition, bounded by the reader's limit."""
        key = encode_key(job_id)
        for topic in (self.topic, self.retry_topic):
            pending = self._side.pending(topic)
            settled = {p.tp: p.marks.settled for p in pending}
            for msg in self._side.read({p.tp: (p.floor, p.high) for p in pending}):
                tp = (msg.topic(), msg.partition())
                if msg.key() == key and msg.offset() not in settled[tp]:
                    return True
        return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            member, self._member = self._member, None
        if member is not None:
            member.close()
        self._side.close()
        self._producer.flush(self._timeout)


def _words(exc: BaseException | str) -> str:
    """What went wrong: a KafkaError's own words where the exception carries one."""
    err: Any = exc.args[0] if isinstance(exc, BaseException) and exc.args else None
    return str(err.str() if hasattr(err, "str") else exc)


def _positive(name: str, raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PARTITIONS
    value = int(raw) if raw.isdigit() else 0
    if value < 1:
        raise ConfigError(f"Kafka option {name}={raw!r} must be a positive whole number")
    return value


def _parse_url(url: str) -> tuple[str, str, str, str, dict[str, str]]:
    """(bootstrap servers, user, password, topic, client options) of a ``kafka://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise ConfigError(f"not a Kafka URL: {parts.scheme}://...", hint="kafka://host:9092/topic")
    userinfo, _, servers = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if not servers or any(not s.strip() for s in servers.split(",")):
        raise ConfigError("a Kafka URL needs its bootstrap servers", hint="kafka://host:9092/topic")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "partitions" and "." not in key:
            raise ConfigError(
                f"unknown Kafka URL option {key!r}",
                hint="partitions=N, or a librdkafka property such as group.id=...",
            )
        options[key] = value
    return servers, unquote(user), unquote(password), unquote(parts.path.strip("/")), options


__all__ = ["DEFAULT_TOPIC", "MAX_HELD", "SETTLE", "KafkaQueue"]
