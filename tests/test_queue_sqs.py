"""The SQS queue: the Queue contract against moto's SQS server on loopback (a fresh queue per
test), plus what only SQS has: queue URLs and settings, errors that name the masked URL, whole
seconds, delays longer than SQS allows, stale receipt handles, foreign and oversized messages."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_module
from contracts.queue_contract import MakeQueue, QueueContract

from agent_sdk.config import Settings, load_settings
from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput, NotFound
from agent_sdk.queue import open_queue, queue_from_settings
from agent_sdk.queue.base import Queue, QueueDepth

boto3 = require_module("boto3", "SQS (moto's server)")
require_module("moto.server", "SQS (moto's server)")
from agent_sdk.queue import sqs as sqs_module  # noqa: E402
from agent_sdk.queue.sqs import SQSQueue, delay_seconds, lease_seconds  # noqa: E402

# Every test here talks to moto's server, a process of its own: out of the quick tier.
pytestmark = pytest.mark.slow

# moto's server in a process of its own (its CPU is not this process's, as a real SQS's is not),
# bound to loopback on a free port, which it prints; it ends when its stdin closes.
#
# moto's SQS keeps messages in plain lists without a lock, and its server answers requests in
# threads. Under load that showed: two concurrent receives handing one message to two consumers,
# and two concurrent deletes losing one of them (the message came back). SQS does neither, so
# the server below runs moto's message operations one at a time; a long poll waits outside the
# lock, woken by a send as in moto itself.
_SERVER = """
import functools, logging, sys, threading, time
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.sqs.models import SQSBackend

lock = threading.RLock()

def locked(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with lock:
            return method(*args, **kwargs)
    return call

for name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
             "change_message_visibility", "change_message_visibility_batch", "purge_queue"):
    setattr(SQSBackend, name, locked(getattr(SQSBackend, name)))
receive_now = SQSBackend.receive_message

def receive_message(self, queue_name, count, wait, visibility, attribute_names=None):
    deadline = time.monotonic() + wait
    while True:
        with lock:
            got = receive_now(self, queue_name, count, 0, visibility, attribute_names)
        left = deadline - time.monotonic()
        if got or left <= 0:
            return got
        self.get_queue(queue_name).wait_for_messages(min(1.0, left))

SQSBackend.receive_message = receive_message
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        pytest.fail(f"moto's server did not start (said {port!r})")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and nothing from the developer's own AWS setup (profiles, endpoints,
    instance metadata). Set in os.environ, so spawned processes get them too."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def client(moto_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on moto, to look behind the queue's back."""
    c = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    yield c
    c.close()


def _new_queue(client: Any, **attributes: str) -> str:
    name = "test-" + secrets.token_hex(6)
    url: str = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


@pytest.fixture
def plain_url(client: Any) -> str:
    """A fresh, empty queue's URL as SQS gives it (http://127.0.0.1:<port>/<account>/<name>)."""
    return _new_queue(client)


class TestSQSQueue(QueueContract):
    LEASE = 1.0  # SQS counts visibility in whole seconds

    @pytest.fixture
    def make_queue(self, plain_url: str) -> Iterator[MakeQueue]:
        opened: list[SQSQueue] = []

        def make() -> Queue:
            opened.append(SQSQueue(plain_url))
            return opened[-1]

        yield make
        for q in opened:
            q.close()

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue()

    @pytest.fixture
    def queue_url(self, plain_url: str) -> str:
        return "sqs+" + plain_url


# -- URLs and settings ----------------------------------------------------------------------------


def test_open_queue_by_url_creates_the_dead_queue_beside_it(plain_url: str, client: Any) -> None:
    q = open_queue("sqs+" + plain_url)
    assert isinstance(q, SQSQueue) and q.name == plain_url.rsplit("/", 1)[1]
    job = q.enqueue("run", {"a": 1})
    q.close()
    dead_url = client.get_queue_url(QueueName=q.name + "-dead")["QueueUrl"]
    attrs = client.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["All"])["Attributes"]
    assert attrs["MessageRetentionPeriod"] == "1209600"
    again = open_queue("sqs+" + plain_url)
    lease = again.reserve("w", lease=30, timeout=0)
    assert lease is not None and lease.job.id == job.id and lease.job.payload == {"a": 1}
    again.dead(lease, "boom")
    body = client.receive_message(QueueUrl=dead_url, WaitTimeSeconds=0)["Messages"][0]["Body"]
    assert job.id in body and "boom" in body
    again.close()


def test_queue_from_settings_and_the_environment(
    settings: Settings, plain_url: str, client: Any
) -> None:
    own_dead = _new_queue(client)
    env = {"AGENT_SDK_QUEUE_BACKEND": "sqs", "AGENT_SDK_SQS_QUEUE_URL": plain_url}
    env["AGENT_SDK_SQS_DEAD_QUEUE_URL"] = own_dead
    loaded = load_settings(env=env, cwd=Path.cwd())
    assert loaded.queue.sqs.queue_url == plain_url and loaded.queue.sqs.dead_queue_url == own_dead
    q = queue_from_settings(loaded)
    assert isinstance(q, SQSQueue)
    q.enqueue("run", {})
    lease = q.reserve("w", lease=30, timeout=0)
    assert lease is not None
    q.dead(lease, "into the queue the settings name")
    attrs = client.get_queue_attributes(
        QueueUrl=own_dead, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
    assert [d.error for d in q.list_dead()] == ["into the queue the settings name"]
    q.close()
    # The sqs+ form works in the setting too.
    q = queue_from_settings(settings.replace(queue_backend="sqs", sqs_queue_url="sqs+" + plain_url))
    assert isinstance(q, SQSQueue) and q.depth().ready == 0
    q.close()
    with pytest.raises(ConfigError) as info:
        queue_from_settings(settings.replace(queue_backend="sqs", sqs_queue_url=None))
    assert "AGENT_SDK_SQS_QUEUE_URL" in info.value.message


def test_region_and_endpoint_come_from_the_url_and_the_environment(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AWS queue URL names its region; AWS_ENDPOINT_URL_SQS sends the requests elsewhere."""
    west = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="eu-west-1")
    name = "test-" + secrets.token_hex(6)
    west.create_queue(QueueName=name)
    west.close()
    aws_url = f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    q = SQSQueue(aws_url)
    assert q.region == "eu-west-1" and q.endpoint == moto_endpoint
    q.enqueue("run", {"where": "eu-west-1"})
    q.close()
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    # The same queue through ?endpoint= and ?region= of the sqs+ form.
    q2 = open_queue(
        f"sqs+https://example.invalid/123456789012/{name}?endpoint={moto_endpoint}&region=eu-west-1"
    )
    assert isinstance(q2, SQSQueue) and q2.region == "eu-west-1"
    assert q2.depth().ready == 1
    q2.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqs://123456789012/jobs", "sqs+https://"),
        ("sqs+ftp://host/123/jobs", "sqs+https://"),
        ("ftp://host/123/jobs", "not an SQS queue URL"),
        ("https://sqs.us-east-1.amazonaws.com/", "names no queue"),
        ("https://sqs.us-east-1.amazonaws.com/123/jobs.fifo", "FIFO"),
        ("sqs+https://sqs.us-east-1.amazonaws.com/123/jobs?queue=x", "unknown parameter"),
        ("https://sqs.us-east-1.amazonaws.com/123/" + "n" * 76, "longer than SQS allows"),
    ],
)
def test_bad_urls_are_config_errors(
    url: str, words: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Requests would go to a closed port: a URL that passed parsing would fail differently.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:1")
    with pytest.raises(ConfigError) as info:
        if url.startswith("sqs"):
            open_queue(url)
        else:  # the setting takes a plain queue URL
            queue_from_settings(settings.replace(queue_backend="sqs", sqs_queue_url=url))
    assert words in info.value.message


def test_an_unreachable_endpoint_names_the_url_without_its_secret() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        open_queue("sqs+http://AKIDEXAMPLE:hunter2@127.0.0.1:1/123456789012/jobs")
    message = info.value.message
    assert "127.0.0.1:1/123456789012/jobs" in message and "***" in message
    assert "hunter2" not in message + (info.value.hint or "") and "\n" not in message
    assert time.monotonic() - started < 15


def test_a_missing_queue_is_a_config_error_naming_it(plain_url: str, client: Any) -> None:
    gone = plain_url + "-never-created"
    with pytest.raises(ConfigError) as info:
        SQSQueue(gone)
    assert gone in info.value.message and "does not exist" in info.value.message
    # Deleted while in use: the queue is unavailable, and says which.
    q = SQSQueue(plain_url)
    client.delete_queue(QueueUrl=plain_url)
    with pytest.raises(BackendUnavailable) as unavailable:
        q.depth()
    assert plain_url in unavailable.value.message
    q.close()


def test_a_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigError) as info:
        SQSQueue("https://sqs.us-east-1.amazonaws.com/123456789012/jobs")
    assert info.value.hint == "pip install 'agent-sdk[sqs]'"


# -- SQS's units and limits --------------------------------------------------------------------


def test_whole_seconds() -> None:
    assert [lease_seconds(s) for s in (0, 0.05, 0.49, 0.5, 1.4, 30)] == [0, 0, 0, 1, 1, 30]
    assert lease_seconds(10**9) == 43_200
    assert [delay_seconds(s) for s in (0, 0.01, 0.4, 1.0, 2.0001)] == [0, 1, 1, 1, 3]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_seconds_that_are_not_finite_are_refused(plain_url: str, bad: float) -> None:
    q = SQSQueue(plain_url)
    try:
        with pytest.raises(InvalidInput):
            q.enqueue("run", {}, delay=bad)
        with pytest.raises(InvalidInput):
            q.reserve("w", lease=bad, timeout=0)
        with pytest.raises(InvalidInput):
            q.reserve("w", lease=30, timeout=bad)
        q.enqueue("run", {})
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None
        with pytest.raises(InvalidInput):
            q.extend(lease, bad)
        with pytest.raises(InvalidInput):
            q.retry(lease, bad, "x")
        q.ack(lease)  # none of that touched the lease
        assert q.depth().total == 0
    finally:
        q.close()


def test_leases_say_what_sqs_was_told(plain_url: str) -> None:
    q = SQSQueue(plain_url)
    try:
        q.enqueue("run", {})
        before = time.time()
        lease = q.reserve("w", lease=1.4, timeout=0)
        assert lease is not None
        assert before + 1 - 0.05 <= lease.expires_at <= time.time() + 1
        before = time.time()
        longer = q.extend(lease, 2.6)
        assert before + 3 - 0.05 <= longer.expires_at <= time.time() + 3
        assert longer.token == lease.token
        time.sleep(1.3)  # past the first 1 s, within the extended 3 s: still hidden
        assert q.reserve("w2", lease=30, timeout=0) is None
        q.ack(longer)
    finally:
        q.close()


def test_a_delay_longer_than_sqs_allows_travels_in_hops(
    plain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS delays a message at most 900 s; here at most 1 s, so a 3 s delay takes three hops,
    and a worker that receives the job early sends it on instead of running it."""
    monkeypatch.setattr(sqs_module, "MAX_DELAY", 1)
    q = SQSQueue(plain_url)
    try:
        job = q.enqueue("run", {"n": 1}, delay=2.5)
        assert job.available_at == job.enqueued_at + 3
        assert q.depth() == QueueDepth(ready=0, delayed=1, leased=0, dead=0)
        lease = q.reserve("w", lease=30, timeout=1.5)  # receives the first hop, passes it on
        assert lease is None
        lease = q.reserve("w", lease=30, timeout=6)
        assert lease is not None and lease.job.id == job.id
        assert time.time() >= job.available_at - 0.05
        assert lease.job.attempts == 1  # hops are not attempts
        q.ack(lease)
        assert q.depth().total == 0
    finally:
        q.close()


def test_a_long_retry_delay_also_hops(plain_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqs_module, "MAX_DELAY", 1)
    q = SQSQueue(plain_url)
    try:
        q.enqueue("run", {})
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None
        retried_at = time.time()
        q.retry(lease, 2, "later")
        again = q.reserve("w", lease=30, timeout=6)
        assert again is not None and time.time() >= retried_at + 2
        assert again.job.attempts == 2 and again.job.last_error == "later"
        q.ack(again)
    finally:
        q.close()


def test_too_big_a_job_is_refused_and_a_long_error_is_cut_to_fit(client: Any) -> None:
    url = _new_queue(client, MaximumMessageSize="4096")
    q = SQSQueue(url)
    try:
        with pytest.raises(InvalidInput) as info:
            q.enqueue("run", {"blob": "x" * 5000})
        assert "4096" in info.value.message
        # Escapes count: 800 emoji are 800 characters but 9600 bytes of body.
        with pytest.raises(InvalidInput):
            q.enqueue("run", {"emoji": "🤖" * 800})
        assert q.depth().total == 0
        q.enqueue("run", {"small": True})
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None
        q.retry(lease, 0, "traceback line\n" * 1000)
        again = q.reserve("w", lease=30, timeout=0)
        assert again is not None and again.job.last_error is not None
        assert again.job.last_error.startswith("traceback line\n")
        assert again.job.last_error.endswith("[cut to fit an SQS message]")
        q.dead(again, "💥" * 5000)  # a dead job's error is cut the same way
        (dead,) = q.list_dead()
        assert dead.error.startswith("💥") and dead.job.payload == {"small": True}
    finally:
        q.close()


# -- leases and receipt handles --------------------------------------------------------------------


def test_sqs_honours_a_stale_receipt_handle(client: Any, plain_url: str) -> None:
    """Why the queue takes over with a copy: on its own, SQS (here moto) applies an old receipt
    handle to a message that another consumer received since, so a stale worker could extend
    or delete the new holder's job."""
    client.send_message(QueueUrl=plain_url, MessageBody="x")
    first = client.receive_message(QueueUrl=plain_url, VisibilityTimeout=1)["Messages"][0]
    time.sleep(1.1)
    second = client.receive_message(QueueUrl=plain_url, VisibilityTimeout=30, WaitTimeSeconds=2)
    assert second["Messages"][0]["MessageId"] == first["MessageId"]
    client.change_message_visibility(
        QueueUrl=plain_url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )  # accepted: the new holder's message is visible again


def test_a_stale_receipt_handle_is_a_conflict(plain_url: str, client: Any) -> None:
    q = SQSQueue(plain_url)
    try:
        job = q.enqueue("run", {})
        first = q.reserve("w1", lease=1, timeout=0)
        assert first is not None
        second = q.reserve("w2", lease=30, timeout=5)  # after first's lease expired
        assert second is not None and second.job.id == job.id and second.job.attempts == 2
        # The message first was leased from is gone: SQS itself refuses its handle now.
        with pytest.raises(client.exceptions.ReceiptHandleIsInvalid):
            client.change_message_visibility(
                QueueUrl=plain_url, ReceiptHandle=first.token, VisibilityTimeout=0
            )
        for settle in (
            lambda: q.extend(first, 30),
            lambda: q.ack(first),
            lambda: q.retry(first, 0, "late"),
            lambda: q.dead(first, "late"),
        ):
            with pytest.raises(Conflict):
                settle()
        # None of that touched the new holder's lease.
        assert q.reserve("w3", lease=30, timeout=0) is None
        assert q.depth() == QueueDepth(ready=0, delayed=0, leased=1, dead=0)
        q.ack(second)
        assert q.depth().total == 0
    finally:
        q.close()


def test_a_garbage_token_is_a_conflict(plain_url: str) -> None:
    q = SQSQueue(plain_url)
    try:
        q.enqueue("run", {})
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None
        forged = dataclasses.replace(lease, token="' OR 1=1; --\x00🤖")
        with pytest.raises(Conflict):
            q.ack(forged)
        q.ack(lease)
    finally:
        q.close()


def test_messages_that_are_not_jobs_go_to_the_dead_queue(plain_url: str, client: Any) -> None:
    """Someone else's message (or a damaged one) never reaches a worker; an operator sees it
    among the dead jobs, body and all."""
    bodies = [
        "hello",
        '{"tag": "agent-sdk-job/1", "id": 5}',
        '{"tag": "agent-sdk-job/1", "id": "x", "kind": "k", "payload": [], "attempts": 0}',
        "[1, 2, 3]",
    ]
    for body in bodies:
        client.send_message(QueueUrl=plain_url, MessageBody=body)
    q = SQSQueue(plain_url)
    try:
        job = q.enqueue("run", {"real": True})
        got = []
        while (lease := q.reserve("w", lease=30, timeout=0)) is not None:
            got.append(lease.job.id)
            q.ack(lease)
        assert got == [job.id]
        assert q.depth() == QueueDepth(ready=0, delayed=0, leased=0, dead=len(bodies))
        dead = q.list_dead()
        assert sorted(d.job.payload["body"] for d in dead) == sorted(bodies)
        assert {d.job.kind for d in dead} == {"sqs.message"}
        assert {d.error for d in dead} == {"not an agent-sdk job"}
        with pytest.raises(NotFound):
            q.requeue_dead(dead[0].job.id)
        assert q.depth().dead == len(bodies)  # scanning let them go again
    finally:
        q.close()


def test_list_dead_reads_more_than_one_batch(plain_url: str) -> None:
    """SQS hands out at most 10 messages a call: the scan goes on until the queue is read."""
    q = SQSQueue(plain_url)
    try:
        for n in range(23):
            q.enqueue("run", {"n": n})
            lease = q.reserve("w", lease=30, timeout=0)
            assert lease is not None
            q.dead(lease, f"error {n}")
        dead = q.list_dead(1000)
        assert len(dead) == 23 and dead[0].error == "error 22"
        assert [d.died_at for d in dead] == sorted((d.died_at for d in dead), reverse=True)
        back = q.requeue_dead(dead[5].job.id)
        assert back.attempts == 0 and q.depth() == QueueDepth(1, 0, 0, 22)
    finally:
        q.close()


# -- with the real worker --------------------------------------------------------------------------


def test_workers_run_jobs_through_sqs(isolated_env: dict[str, str], plain_url: str) -> None:
    """Queue mode end to end on SQS: runs succeed, a run that keeps failing is dead-lettered in
    the dead queue, and an operator's retry brings it back from there."""
    from test_worker import NOOP, ORG, Flaky, Running, queue_settings, wait_for

    from agent_sdk.engine.agent import Agent, AgentRegistry
    from agent_sdk.records import RunStatus

    settings = queue_settings(
        isolated_env, queue_backend="sqs", sqs_queue_url=plain_url, retry_max="1"
    )
    flaky = Flaky(2)  # fails twice: dead after its one retry, fine when retried by hand
    registry = AgentRegistry(agents=[Agent(name="flaky", model=flaky)])
    with Running(settings, registry) as rt:
        assert isinstance(rt.queue, SQSQueue)
        runs = [rt.runs.create(ORG, NOOP, str(i)) for i in range(5)]
        dying = rt.runs.create(ORG, "flaky", "x")
        for r in runs:
            assert wait_for(rt, r.id).status is RunStatus.SUCCEEDED
        assert wait_for(rt, dying.id).status is RunStatus.DEAD
        deadline = time.monotonic() + 10
        while rt.queue.depth().dead != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        [dead] = rt.queue.list_dead()
        assert dead.job.id == dying.id and "throttled" in dead.error
        rt.runs.retry(ORG, dying.id)
        back = wait_for(rt, dying.id, lambda r: r.status is RunStatus.SUCCEEDED)
        assert back.status is RunStatus.SUCCEEDED
        deadline = time.monotonic() + 10
        while rt.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.queue.depth().total == 0
