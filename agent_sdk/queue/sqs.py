"""The Amazon SQS queue: a standard queue holds the jobs, a second queue holds the dead ones.

``AGENT_SDK_QUEUE_BACKEND=sqs`` with
``AGENT_SDK_SQS_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/agent-sdk-jobs``, or
``open_queue("sqs+https://sqs.eu-west-1.amazonaws.com/123456789012/agent-sdk-jobs")``.

Where requests go: the endpoint is the first of ``?endpoint=`` in an ``sqs+`` URL,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, and, for a queue URL whose host is not
``amazonaws.com`` (ElasticMQ, LocalStack, moto), that URL's own scheme, host and port; otherwise
boto3's regional endpoint. The region is the first of ``?region=``, the one in an AWS queue URL's
host, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the AWS config file, and ``us-east-1``. Credentials
come from boto3's usual chain, or from the URL's ``key-id:secret@`` (masked in every message).

How the Queue protocol maps onto SQS:

* **A job is one message** whose body is a JSON record (id, kind, payload, attempts, times, last
  error), ASCII-escaped so any text survives SQS's character rules. A message that is not such a
  record (someone else wrote to the queue) goes to the dead queue untouched, never to a worker.
* **A lease is the visibility timeout** set by ``ReceiveMessage``; the token is the receipt
  handle; ``extend`` is ``ChangeMessageVisibility``; ``ack`` is ``DeleteMessage``. SQS counts in
  whole seconds: a lease is rounded to the nearest second (``expires_at`` says what SQS was told)
  and a delay up to the next one (a job never comes out early).
* **Lost leases are found by taking over with a copy.** SQS may accept an old receipt handle of
  a message that was received again and apply it to the new holder's delivery (moto does; SQS
  documents it for DeleteMessage). So a message is leased only on its first delivery: a later
  one (``ApproximateReceiveCount > 1``: a lease expired, or SQS delivered twice) sends a copy of
  the job, with those deliveries counted as attempts, and deletes the original. Every older
  receipt handle then names a deleted message, and ``ChangeMessageVisibility`` on it fails.
  ``ack``, ``retry`` and ``dead`` begin with that call (holding the message for
  ``_SETTLE_HOLD`` seconds while they finish) and raise Conflict when it fails. A lease that
  expired but that nobody took is still honoured, except by ``extend`` where SQS refuses it
  ("not in flight"): a visible message cannot be hidden again without receiving it.
* **attempts is our own count** in the record, not SQS's receive count: a retry is a new message
  (with ``DelaySeconds`` as the delay and the error kept), so SQS's count would restart at 1.
* **Delays longer than SQS's 900 s** travel in hops: the message is sent with the longest delay
  SQS allows, and a worker that receives it early sends it on with what is left (not an attempt).
  Hops measure time with the clocks of the machines involved.
* **Dead letters are ours, not a redrive policy**: the worker decides when a job is dead, and
  ``dead`` moves it to the dead queue (``<name>-dead``, created on first use, or the queue given
  as ``AGENT_SDK_SQS_DEAD_QUEUE_URL``), keeping its error and when it died. SQS cannot fetch a
  message by id or list a queue, so ``list_dead`` and ``requeue_dead`` receive the whole dead
  queue (up to ``_SCAN_LIMIT`` messages), hold it for ``_SCAN_HOLD`` seconds and let it go again;
  two of them at the same moment each see only part of it. ``requeue_dead`` finds dead jobs
  only: a live job's id gives NotFound, since SQS cannot tell whether it is queued.
* **Waiting is long polling** (``WaitTimeSeconds``, whole seconds, at most 20); what is left of a
  timeout below one second is waited in short polls with back-off, never a spin. SQS answers a
  short poll (``timeout=0``) from a sample of its servers, so it may miss a job that is there.

Capabilities: a standard queue delivers roughly in order and keeps duplicates of an id, so
``ordered`` and ``unique_ids`` are False (the worker copes with a duplicate job). FIFO queues are
refused: they have no per-message delay. Leave the jobs' queue without a redrive policy (one with
``maxReceiveCount`` 1 would take jobs away before a takeover). Limits that stay SQS's: a job's
record is at most the queue's ``MaximumMessageSize`` (up to 1 MiB); a message not deleted within
the queue's retention period (4 days by default, 14 at most; the dead queue we create keeps 14)
is dropped by SQS; a lease can be extended to at most 12 hours after its job was received.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agent_sdk.config import AwsEnvironment, aws_environment
from agent_sdk.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    QueueMissing,
)
from agent_sdk.masking import mask_url
from agent_sdk.queue import _sqs_records as records
from agent_sdk.queue._sqs_place import place
from agent_sdk.queue.base import BaseQueue, DeadJob, Job, Lease, QueueDepth, lease_lost, new_job

if TYPE_CHECKING:
    from agent_sdk.config import Settings

DEAD_SUFFIX = "-dead"
MAX_DELAY = 900  # SQS's longest DelaySeconds
MAX_WAIT = 20  # SQS's longest WaitTimeSeconds
MAX_VISIBILITY = 43_200  # SQS's longest visibility timeout (12 hours)
_DEAD_RETENTION = 1_209_600  # 14 days, the longest SQS keeps a message
# Seconds ack/retry/dead hold the message invisible while they finish (their first call).
_SETTLE_HOLD = 10
# list_dead/requeue_dead: how long a scan hides the dead queue, and how much of it it reads.
_SCAN_HOLD = 30
_SCAN_LIMIT = 10_000
_CUT = "… [cut to fit an SQS message]"
# Error codes of a receipt handle that names a deleted message, or one that is not ours.
_HANDLE_GONE = {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.ReceiptHandleIsInvalid"}
_NOT_IN_FLIGHT = {"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
_NO_QUEUE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def _import_boto() -> tuple[Any, Any, Any]:
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise ConfigError(
            "the SQS queue needs the boto3 package, which is not installed",
            hint="pip install 'agent-sdk[sqs]'",
        ) from None
    return boto3, botocore.config, botocore.exceptions


def _finite(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise InvalidInput(f"a number of seconds must be finite, not {seconds}")
    return seconds


def lease_seconds(seconds: float) -> int:
    """A lease as SQS counts it: whole seconds, the nearest, within SQS's range."""
    return min(MAX_VISIBILITY, math.floor(_finite(seconds) + 0.5))


def delay_seconds(seconds: float) -> int:
    """A delay in whole seconds, rounded up: a job is never ready before it was asked to be."""
    return math.ceil(seconds - 1e-9) if _finite(seconds) > 0 else 0


class SQSQueue(BaseQueue):
    durable: ClassVar[bool] = True  # SQS keeps messages for the queue's retention period
    ordered: ClassVar[bool] = False  # a standard queue delivers roughly in order
    unique_ids: ClassVar[bool] = False  # and keeps two messages of one job id
    lease_expiry: ClassVar[bool] = True
    scheme: ClassVar[str] = "sqs"

    def __init__(
        self,
        queue_url: str,
        *,
        dead_queue_url: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
        timeout: float = 2.0,
        request_attempts: int = 3,
        aws: AwsEnvironment | None = None,
    ) -> None:
        """``aws``: the AWS variables (Settings.aws); by default this process's own."""
        boto3, config, self._errors = _import_boto()
        self._aws = aws or aws_environment()
        where = place(queue_url, endpoint=endpoint, region=region, aws=self._aws)
        if not dead_queue_url and len(where.name + DEAD_SUFFIX) > 80:
            raise ConfigError(
                f"the dead queue name {where.name + DEAD_SUFFIX!r} is longer than SQS allows (80)",
                hint="name a dead queue with AGENT_SDK_SQS_DEAD_QUEUE_URL",
            )
        self.url = where.shown
        self.name = where.name
        self._queue_url = where.url
        self._hide(queue_url, dead_queue_url, endpoint)
        session = boto3.session.Session(
            aws_access_key_id=where.key_id, aws_secret_access_key=where.secret
        )
        self.region = where.region or session.region_name or "us-east-1"
        self.endpoint = where.endpoint
        self._client = session.client(
            "sqs",
            region_name=self.region,
            endpoint_url=where.endpoint,
            config=config.Config(
                connect_timeout=timeout,
                read_timeout=MAX_WAIT + 10,  # a long poll is an answer that takes 20 s
                retries={"mode": "standard", "total_max_attempts": max(1, request_attempts)},
                max_pool_connections=16,
            ),
        )
        try:
            attrs = self._attributes(self._queue_url, "MaximumMessageSize")
            self._max_size = int(attrs.get("MaximumMessageSize", 262_144))
            self._dead_url = self._dead_queue(dead_queue_url)
        except QueueMissing as exc:  # at open, a missing queue is a setting to fix
            self.close()
            raise ConfigError(exc.message, hint=exc.hint) from None
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQSQueue:
        """``sqs+https://sqs.<region>.amazonaws.com/<account>/<name>`` (``sqs+http://`` for a
        local service), with optional ``?region=``, ``?endpoint=`` and ``?dead_queue=`` (a URL,
        percent-encoded)."""
        if not url.startswith(("sqs+http://", "sqs+https://")):
            raise ConfigError(
                f"an SQS queue URL starts with sqs+https:// (or sqs+http://): {mask_url(url)}",
                hint="e.g. sqs+https://sqs.us-east-1.amazonaws.com/123456789012/agent-sdk-jobs",
            )
        parts = urlsplit(url)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in ("region", "endpoint", "dead_queue"):
                raise ConfigError(
                    f"unknown parameter {key!r} in the SQS queue URL",
                    hint="known: region, endpoint, dead_queue",
                )
            options.setdefault("dead_queue_url" if key == "dead_queue" else key, value or None)
        return cls(urlunsplit(parts._replace(query="")), **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> SQSQueue:
        """AGENT_SDK_SQS_QUEUE_URL, and AGENT_SDK_SQS_DEAD_QUEUE_URL if set."""
        url = settings.sqs_queue_url
        if not url:
            raise ConfigError(
                "AGENT_SDK_QUEUE_BACKEND=sqs needs AGENT_SDK_SQS_QUEUE_URL",
                hint="e.g. https://sqs.us-east-1.amazonaws.com/123456789012/agent-sdk-jobs",
            )
        dead, aws = settings.sqs_dead_queue_url, settings.aws
        if url.startswith("sqs+"):
            return cls.from_url(url, dead_queue_url=dead, aws=aws)
        return cls(url, dead_queue_url=dead, aws=aws)

    def __repr__(self) -> str:
        return f"SQSQueue({self.url!r})"

    # -- calls and errors -------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return " ".join(super()._scrub(text).split())  # one line

    def _unavailable(self, action: str, detail: str) -> BackendUnavailable:
        where = f" via {mask_url(self.endpoint)}" if self.endpoint else ""
        return self._outage(
            f"SQS queue {self.url}{where} failed ({action}): {detail}",
            hint="check AGENT_SDK_SQS_QUEUE_URL, the AWS credentials and that SQS is reachable",
        )

    @contextmanager
    def _calling(self, action: str, url: str | None = None) -> Iterator[None]:
        """Turn boto3's errors into ours: a missing queue, missing credentials, and every other
        failure as BackendUnavailable naming the queue. A caller that expects a ClientError
        (a refused receipt handle) catches it inside the ``with``."""
        try:
            yield
        except self._errors.NoCredentialsError:
            raise ConfigError(
                f"no AWS credentials for the SQS queue {self.url}",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an IAM role",
            ) from None
        except self._errors.ClientError as exc:
            if _codes(exc) & _NO_QUEUE:
                which = mask_url(url) if url and url != self._queue_url else self.url
                raise QueueMissing(
                    self._scrub(f"the SQS queue {which} does not exist"),
                    hint="create it, or fix AGENT_SDK_SQS_QUEUE_URL (AGENT_SDK_SQS_DEAD_QUEUE_URL)",
                ) from None
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message', '')}"
            raise self._unavailable(action, detail) from None
        except self._errors.BotoCoreError as exc:
            raise self._unavailable(action, str(exc)) from None

    def _attributes(self, url: str, *names: str) -> dict[str, str]:
        with self._calling("GetQueueAttributes", url):
            reply = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))
        attrs: dict[str, str] = reply.get("Attributes", {})
        return attrs

    def _dead_queue(self, given: str | None) -> str:
        """The dead queue's URL: the one given, or ``<name>-dead`` beside ours, created if absent
        (with the same message size and the longest retention)."""
        if given:
            dead = place(given, endpoint=self.endpoint, region=self.region, aws=self._aws)
            self._attributes(dead.url, "QueueArn")
            return dead.url
        name = self.name + DEAD_SUFFIX
        with self._calling("CreateQueue"):
            try:
                reply = self._client.get_queue_url(QueueName=name)
            except self._errors.ClientError as exc:
                if not _codes(exc) & _NO_QUEUE:
                    raise
                attrs = {
                    "MessageRetentionPeriod": str(_DEAD_RETENTION),
                    "MaximumMessageSize": str(self._max_size),
                }
                reply = self._client.create_queue(QueueName=name, Attributes=attrs)
        dead_url: str = reply["QueueUrl"]
        return dead_url

    def close(self) -> None:
        self._client.close()

    # -- sending and receiving --------------------------------------------------------------------
    def _body(self, record: dict[str, Any]) -> str:
        """The record as a message body, its error cut short if that makes it fit; InvalidInput
        if the job itself is bigger than the queue takes."""
        body = records.dumps(record)
        error = record.get("last_error")
        if len(body) > self._max_size and error:
            # The longest start of the error that fits (escapes make bytes differ from length).
            low, high = 0, len(error)
            while low < high:
                mid = (low + high + 1) // 2
                if (
                    len(records.dumps({**record, "last_error": error[:mid] + _CUT}))
                    <= self._max_size
                ):
                    low = mid
                else:
                    high = mid - 1
            body = records.dumps({**record, "last_error": error[:low] + _CUT})
            if len(body) > self._max_size:  # not even the note fits: drop the error
                body = records.dumps({**record, "last_error": ""})
        if len(body) > self._max_size:
            raise InvalidInput(
                f"job {record['id']} is {len(body)} bytes as an SQS message; the queue takes "
                f"at most {self._max_size} (its MaximumMessageSize)",
                hint="keep large data elsewhere and put a reference in the payload",
            )
        return body

    def _send(self, url: str, record: dict[str, Any], delay: float) -> None:
        """Send a record, ready after ``delay`` (hops of at most MAX_DELAY for a longer one)."""
        record = {k: v for k, v in record.items() if k != "hold_until"}
        seconds = delay_seconds(delay)
        if seconds > MAX_DELAY:
            record["hold_until"] = time.time() + seconds
            seconds = MAX_DELAY
        body = self._body(record)
        with self._calling("SendMessage", url):
            self._client.send_message(QueueUrl=url, MessageBody=body, DelaySeconds=seconds)

    def _delete(self, url: str, handle: str) -> None:
        with self._calling("DeleteMessage", url):
            self._client.delete_message(QueueUrl=url, ReceiptHandle=handle)

    def _receive(self, url: str, *, hide: int, wait: int, count: int) -> list[dict[str, Any]]:
        with self._calling("ReceiveMessage", url):
            reply = self._client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=hide,
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        return messages

    def _hold(self, lease: Lease, seconds: int, *, settling: bool) -> None:
        """ChangeMessageVisibility on the lease's receipt handle. Conflict when the message is
        gone (a takeover deleted it, or it was settled). A message nobody took since its lease
        expired is still ours to settle, but SQS will not hide it again for ``extend``."""
        with self._calling("ChangeMessageVisibility"):
            try:
                self._client.change_message_visibility(
                    QueueUrl=self._queue_url, ReceiptHandle=lease.token, VisibilityTimeout=seconds
                )
            except self._errors.ClientError as exc:
                codes = _codes(exc)
                if codes & _NOT_IN_FLIGHT:
                    if settling:
                        return
                    raise Conflict(
                        f"the lease of job {lease.job.id} expired, and SQS does not hide a "
                        "message again once it is visible",
                        hint="the next reserve takes the job; drop this attempt's result",
                    ) from None
                if codes & _HANDLE_GONE or _names_the_handle(exc):
                    raise lease_lost(lease) from None
                if codes & {"InvalidParameterValue"}:  # the seconds are in range: the 12 h cap
                    raise Conflict(
                        f"SQS hides a message for at most 12 hours after it was received; the "
                        f"lease of job {lease.job.id} cannot go on",
                        hint="the job will be delivered again; split work that runs this long",
                    ) from None
                raise

    # -- the protocol -----------------------------------------------------------------------------
    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        now = time.time()
        job = new_job(job_id, kind, text, now, now + delay_seconds(delay))
        self._send(self._queue_url, records.record(job), delay)
        return job

    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        """Long polls while ``wait`` lasts a whole second; shorter, one short poll (reserve
        backs off between them)."""
        hide = lease_seconds(lease)
        deadline = time.monotonic() + _finite(wait)
        while True:
            left = deadline - time.monotonic()
            seconds = min(MAX_WAIT, int(left)) if left >= 1 else 0
            started = time.time()
            messages = self._receive(self._queue_url, hide=hide, wait=seconds, count=1)
            for message in messages:
                # A long poll's message was hidden when it arrived, not when the poll began.
                received = time.time() if seconds else started
                taken = self._take(message, worker, hide, received)
                if taken is not None:
                    return taken
            if not messages:
                return None
            # It was passed on (a hop or a takeover): look again at once.

    def _waited(self, wait: float) -> bool:
        return wait >= 1

    def _take(
        self, message: dict[str, Any], worker: str, hide: int, received: float
    ) -> Lease | None:
        """Lease a received message, or pass it on: to the dead queue (not ours), further on
        (a long delay's hop), or as a copy (a later delivery after an expired lease)."""
        handle: str = message["ReceiptHandle"]
        record = records.parse(message["Body"])
        if record is None:
            with self._calling("SendMessage", self._dead_url):
                self._client.send_message(QueueUrl=self._dead_url, MessageBody=message["Body"])
            self._delete(self._queue_url, handle)
            return None
        now = time.time()
        hold_until = float(record.get("hold_until", 0))
        if hold_until > now:
            self._send(self._queue_url, record, hold_until - now)
            self._delete(self._queue_url, handle)
            return None
        deliveries = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if deliveries > 1:
            # Send first, then delete: a crash in between leaves a duplicate, never a loss.
            copy = {**record, "attempts": record["attempts"] + deliveries - 1, "available_at": now}
            self._send(self._queue_url, copy, 0)
            self._delete(self._queue_url, handle)
            return None
        job = records.job(record, attempts=record["attempts"] + 1)
        return Lease(job=job, token=handle, worker=worker, expires_at=received + hide)

    def _extend(self, lease: Lease, seconds: float) -> float:
        hide = lease_seconds(seconds)
        started = time.time()
        self._hold(lease, hide, settling=False)
        return started + hide

    def _ack(self, lease: Lease) -> bool:
        self._hold(lease, _SETTLE_HOLD, settling=True)
        self._delete(self._queue_url, lease.token)
        return True

    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        seconds = delay_seconds(delay)
        self._hold(lease, _SETTLE_HOLD, settling=True)
        job = dataclasses.replace(lease.job, available_at=time.time() + seconds, last_error=error)
        self._send(self._queue_url, records.record(job), seconds)
        self._delete(self._queue_url, lease.token)
        return True

    def _dead(self, lease: Lease, error: str) -> bool:
        self._hold(lease, _SETTLE_HOLD, settling=True)
        record = records.record(dataclasses.replace(lease.job, last_error=error))
        record["died_at"] = time.time()
        self._send(self._dead_url, record, 0)
        self._delete(self._queue_url, lease.token)
        return True

    def depth(self) -> QueueDepth:
        names = (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        )
        main = self._attributes(self._queue_url, *names)
        dead = self._attributes(self._dead_url, *names)
        ready, delayed, leased = (int(main.get(n, "0")) for n in names)
        return QueueDepth(
            ready=ready,
            delayed=delayed,
            leased=leased,
            dead=sum(int(dead.get(n, "0")) for n in names),
        )

    # -- the dead queue: no random access, so read it all and let it go ---------------------------
    @contextmanager
    def _scan(self) -> Iterator[list[dict[str, Any]]]:
        """Receive every message of the dead queue (up to _SCAN_LIMIT), hidden for _SCAN_HOLD
        seconds; the body of the ``with`` may delete some; the rest are shown again on exit."""
        expected = int(
            self._attributes(self._dead_url, "ApproximateNumberOfMessages").get(
                "ApproximateNumberOfMessages", "0"
            )
        )
        got: list[dict[str, Any]] = []
        patient = True  # one long poll if short polls come back empty before the count is met
        try:
            while len(got) < _SCAN_LIMIT:
                batch = self._receive(self._dead_url, hide=_SCAN_HOLD, wait=0, count=10)
                if not batch and patient and len(got) < expected:
                    patient = False
                    batch = self._receive(self._dead_url, hide=_SCAN_HOLD, wait=1, count=10)
                if not batch:
                    break
                got.extend(batch)
            yield got
        finally:
            self._release([m["ReceiptHandle"] for m in got if not m.get("deleted")])

    def _release(self, handles: list[str]) -> None:
        """Show scanned messages again at once (failures only delay them by _SCAN_HOLD)."""
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for n, h in enumerate(handles[start : start + 10])
            ]
            try:
                self._client.change_message_visibility_batch(
                    QueueUrl=self._dead_url, Entries=entries
                )
            except (self._errors.ClientError, self._errors.BotoCoreError):
                pass  # they come back by themselves when _SCAN_HOLD ends

    def _list_dead(self, limit: int) -> list[DeadJob]:
        out = []
        with self._scan() as messages:
            for message in messages:
                record = records.parse(message["Body"])
                if record is None:
                    out.append(records.foreign(message))
                    continue
                died_at = float(record.get("died_at", 0))
                out.append(
                    DeadJob(
                        job=records.job(record), error=record["last_error"] or "", died_at=died_at
                    )
                )
        out.sort(key=lambda d: d.died_at, reverse=True)
        return out[:limit]

    def _requeue(self, job_id: str) -> Job:
        with self._scan() as messages:
            found = [
                (record, message)
                for message in messages
                if (record := records.parse(message["Body"])) is not None and record["id"] == job_id
            ]
            if not found:
                raise NotFound(
                    f"no dead job {job_id} in {self._dead_url}",
                    hint="SQS cannot look a live job up by id; only dead ones can be requeued",
                )
            found.sort(key=lambda pair: float(pair[0].get("died_at", 0)), reverse=True)
            record = found[0][0]
            job = dataclasses.replace(records.job(record), attempts=0, available_at=time.time())
            self._send(self._queue_url, records.record(job), 0)
            for _, message in found:  # copies of one job (a duplicate died twice) go together
                self._delete(self._dead_url, message["ReceiptHandle"])
                message["deleted"] = True
        return job


def _codes(exc: Any) -> set[str]:
    error = exc.response.get("Error", {})
    return {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))}


def _names_the_handle(exc: Any) -> bool:
    """SQS's other way of refusing a receipt handle: InvalidParameterValue, "ReceiptHandle ...
    is invalid. Reason: The receipt handle has expired"."""
    error = exc.response.get("Error", {})
    return "receipt handle" in str(error.get("Message", "")).lower() or "ReceiptHandle" in str(
        error.get("Message", "")
    )


__all__ = ["DEAD_SUFFIX", "MAX_DELAY", "SQSQueue", "delay_seconds", "lease_seconds"]
