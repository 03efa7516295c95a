"""Many processes on one Postgres and one Redis: two ``agent-sdk serve`` and four
``agent-sdk worker`` processes, 1,000 runs created through both servers at once, one worker
killed with -9 while it holds runs. Every run must end ``succeeded`` exactly once, the killed
worker's runs must be taken over, and the queue must be empty at the end.

Each process gets its own HOME (as separate machines would), so the only things they share
are the database, the queue and the API-key pepper, which is what a real deployment shares.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from waiting import wait_until

from agent_sdk.records import EventType
from agent_sdk.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.services]

RUNS = 1000
KEYED = 40  # of the RUNS, created by a request sent to both servers with one Idempotency-Key
LEASE = 2.0  # seconds: a killed worker's jobs are taken over this soon after its last beat
ORG = "default"
TERMINAL = {EventType.RUN_SUCCEEDED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
# One scripted turn that waits on the "model", so runs are in flight when the kill lands.
AGENT = {
    "name": "scale",
    "model": "scripted",
    "script": [{"text": "done {input}", "latency": 1.0}],
}
# Inputs that break naive stores and templates: quotes, SQL, the template's own braces,
# control characters, other scripts, a long one.
ODD_INPUTS = [
    "'; DROP TABLE runs; --",
    'quote " backslash \\ tab \t newline \n end',
    "{input} {tool_result} {0} {{}}",
    "emoji \U0001f680 rtl \u05e9\u05dc\u05d5\u05dd combining e\u0301",
    "x" * 20_000,
    "\u2028\u2029 line separators",
]


def _input(i: int) -> str:
    return f"#{i} " + ODD_INPUTS[i % len(ODD_INPUTS)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agent-sdk"), *args]


class Cluster:
    """The processes of one deployment, each with its own HOME and log file. ``stop`` kills
    every one of them, whatever state the test left them in."""

    def __init__(self, root: Path, base_env: dict[str, str], shared: dict[str, str]) -> None:
        self.root = root
        self.base_env = base_env
        self.shared = shared
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def env(self, name: str) -> dict[str, str]:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in self.base_env.items() if not k.startswith("AGENT_SDK_")}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            NO_COLOR="1",
            **self.shared,
        )
        return env

    def run(self, name: str, *args: str) -> str:
        done = subprocess.run(
            _cli(*args), env=self.env(name), cwd=self.root / name, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _cli(*args), env=self.env(name), cwd=self.root / name, stdout=out, stderr=out
            )
        self.procs[name] = proc
        return proc

    def start_server(self, name: str) -> str:
        port = _free_port()
        proc = self.start(name, "serve", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"{name} exited:\n{self.logs[name].read_text()}"
            assert time.monotonic() < deadline, f"{name} did not start:\n{self.log_text()}"
            time.sleep(0.05)

    def log_text(self) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"----- {name} ({path}) -----\n{text[-20_000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def cluster(
    isolated_env: dict[str, str], postgres_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Cluster]:
    sep = "&" if "?" in redis_url else "?"
    shared = {
        "AGENT_SDK_STORAGE_BACKEND": "postgres",
        "AGENT_SDK_DATABASE_URL": postgres_url,
        "AGENT_SDK_QUEUE_BACKEND": "redis",
        "AGENT_SDK_REDIS_URL": f"{redis_url}{sep}queue=scale-{uuid.uuid4().hex[:12]}",
        "AGENT_SDK_EXECUTION_MODE": "queue",
        "AGENT_SDK_WORKER_LEASE": str(LEASE),
        # Every server must hash API keys with the same pepper, or a key made by one server
        # is refused by the other.
        "AGENT_SDK_API_KEY_PEPPER": secrets.token_hex(32),
    }
    c = Cluster(tmp_path / "cluster", isolated_env, shared)
    try:
        yield c
    finally:
        c.stop()


def _all_runs(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{url}/v1/runs", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        out.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_two_servers_four_workers_one_killed(cluster: Cluster) -> None:
    try:
        _scenario(cluster)
    except BaseException:
        print(cluster.log_text())  # pytest shows a failing test's output
        raise


def _scenario(cluster: Cluster) -> None:
    # `serve` refuses an unmigrated database: migrating is a step of its own.
    cluster.run("migrate", "db", "migrate")
    # The first server creates the bootstrap key; the second finds the org has one.
    urls = [cluster.start_server("server-a")]
    token_file = cluster.root / "server-a/.local/share/agent-sdk/admin-token"
    token = token_file.read_text().strip()
    urls.append(cluster.start_server("server-b"))
    assert not (cluster.root / "server-b/.local/share/agent-sdk/admin-token").exists()
    workers = [cluster.start(f"worker-{i}", "worker", "--count", "1") for i in range(4)]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        _exercise(cluster, urls, token, workers, api)


def _exercise(
    cluster: Cluster,
    urls: list[str],
    token: str,
    workers: list[subprocess.Popen[bytes]],
    api: httpx.Client,
) -> None:

    def status(url: str = urls[0]) -> dict[str, Any]:
        answer = api.get(f"{url}/v1/status")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    wait_until("four live workers", lambda: status()["workers"]["count"] == 4, 30)
    # The same key works on both servers: they share the pepper, not a data directory.
    assert api.get(f"{urls[1]}/v1/runs", params={"limit": 1}).status_code == 200

    # Hostile requests first: none of them may create a run.
    refused = [
        httpx.post(f"{urls[0]}/v1/runs", json={"agent": AGENT, "input": "x"}),
        httpx.post(
            f"{urls[1]}/v1/runs",
            json={"agent": AGENT, "input": "x"},
            headers={"Authorization": f"Bearer {token[:-4]}AAAA"},
        ),
        api.post(f"{urls[0]}/v1/runs", json={"agent": AGENT, "input": "nul \x00 byte"}),
        api.post(
            f"{urls[1]}/v1/runs",
            content=b'{"agent": "scale", "input": ',
            headers={"Content-Type": "application/json"},
        ),
        api.post(f"{urls[1]}/v1/runs", json={"agent": {"name": "x", "model": "nope"}, "input": ""}),
    ]
    assert [r.status_code for r in refused] == [401, 401, 422, 422, 422], [r.text for r in refused]

    def create(i: int) -> str:
        answer = api.post(f"{urls[i % 2]}/v1/runs", json={"agent": AGENT, "input": _input(i)})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def create_keyed(i: int) -> str:
        # Both servers get the same request with the same key at the same moment.
        key = f"scale-{i}"
        body = {"agent": AGENT, "input": _input(i)}
        with ThreadPoolExecutor(2) as pair:
            answers = list(
                pair.map(
                    lambda url: api.post(
                        f"{url}/v1/runs", json=body, headers={"Idempotency-Key": key}
                    ),
                    urls,
                )
            )
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1, ids
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 1
        return ids.pop()

    def submit(i: int) -> str:
        return create_keyed(i) if i < KEYED else create(i)

    created: dict[str, int] = {}
    victim: subprocess.Popen[bytes] | None = None
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(submit, i) for i in range(RUNS)]
        # Once a third of the runs exist, kill -9 the busiest worker while it holds runs and
        # creations are still coming in.
        deadline = time.monotonic() + 60
        while sum(f.done() for f in futures) < RUNS // 3:
            assert time.monotonic() < deadline, "creating runs stalled"
            time.sleep(0.05)
        while victim is None:
            assert time.monotonic() < deadline, "no worker ever had runs in flight"
            alive = status(urls[1])["workers"]["alive"]
            busy = max(alive, key=lambda w: w["runs_in_flight"], default=None)
            if busy is not None and busy["runs_in_flight"] >= 3:
                victim = next((p for p in workers if p.pid == busy["pid"]), None)
                assert victim is not None, f"{busy} is none of our workers"
                os.kill(victim.pid, signal.SIGKILL)
            else:
                time.sleep(0.05)
        for i, future in enumerate(futures):
            created[future.result()] = i
    assert victim.wait(10) == -signal.SIGKILL
    assert len(created) == RUNS

    def unfinished() -> int:
        return sum(len(_all_runs(api, urls[0], status=s)) for s in ("queued", "running"))

    wait_until("every run to finish", lambda: unfinished() == 0, 120)
    runs = _all_runs(api, urls[1])
    assert len(runs) == RUNS  # the refused requests created nothing, the keyed ones one each
    assert {r["id"] for r in runs} == set(created)
    assert Counter(r["status"] for r in runs) == {"succeeded": RUNS}
    for r in runs:  # each run answered its own input: no crossed wires between workers
        assert r["output"] == "done " + _input(created[r["id"]])

    store = open_store(cluster.shared["AGENT_SDK_DATABASE_URL"])
    try:
        taken_over = 0
        for r in runs:
            events = store.list_events(ORG, r["id"], limit=1000)
            types = [e.type for e in events]
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert sum(t in TERMINAL for t in types) == 1, (r["id"], types)
            assert types[0] == EventType.RUN_CREATED and types[-1] == EventType.RUN_SUCCEEDED
            starts = [e for e in events if e.type == EventType.RUN_STARTED]
            assert len(starts) == r["attempts"] and starts[0].data["resumed"] is False
            if r["attempts"] >= 2:
                assert all(e.data["resumed"] for e in starts[1:])
                taken_over += 1
        assert taken_over >= 1, "no run of the killed worker was taken over"
    finally:
        store.close()

    def drained() -> bool:
        queue = status(urls[1])["queue"]
        return bool(queue["status"] == "ok") and all(
            queue[k] == 0 for k in ("ready", "delayed", "leased", "dead")
        )

    wait_until("an empty queue", drained, 30)
    # The killed worker never removed its row: status shows it stale once three leases passed.
    wait_until("the killed worker to show as stale", lambda: status()["workers"]["stale"] == 1,
          4 * LEASE + 5)  # fmt: skip
    assert status()["workers"]["count"] == 3
    assert {w["pid"] for w in status()["workers"]["alive"]} == {
        p.pid for p in workers if p is not victim
    }
    assert all(p.poll() is None for p in cluster.procs.values() if p is not victim)


# -- the event append path under many writers ---------------------------------------------------
def test_mixed_appends_from_many_stores_keep_one_gapless_sequence(postgres_url: str) -> None:
    """Workers append alone (one statement, no lock) and inside transactions that also update
    the run (row lock). Mixed, from several stores at once (as from several processes), every
    event gets its own seq, with no gap, and a reader that follows the run by seq never sees a
    seq before a smaller one is visible: otherwise it would resume past an event and lose it."""
    import threading

    from agent_sdk.ids import new_id, utcnow
    from agent_sdk.records import Run, RunStatus

    stores = [open_store(postgres_url) for _ in range(4)]
    try:
        stores[0].migrate()
        stores[0].ensure_org(ORG)
        now = utcnow()
        run = stores[0].insert_run(Run(id=new_id("run"), org_id=ORG, agent="a",
                                       status=RunStatus.RUNNING, input="", created_at=now,
                                       updated_at=now))  # fmt: skip
        writers, per_writer = 8, 40
        written: list[int] = []
        seen: list[int] = []
        errors: list[BaseException] = []
        done = threading.Event()
        lock = threading.Lock()
        start = threading.Barrier(writers + 1)

        def write(k: int) -> None:
            store = stores[k % len(stores)]
            try:
                start.wait()
                for i in range(per_writer):
                    if (k + i) % 3:
                        event = store.append_event(ORG, run.id, "tick", {"k": k, "i": i})
                    else:  # as an attempt's start and finish do: update, then append
                        with store.transaction():
                            store.update_run(ORG, run.id, steps=i)
                            event = store.append_event(ORG, run.id, "tick", {"k": k, "i": i})
                    with lock:
                        written.append(event.seq)
            except BaseException as exc:
                errors.append(exc)

        def follow() -> None:
            after = 0
            start.wait()
            while not (done.is_set() and after == writers * per_writer):
                page = stores[-1].list_events(ORG, run.id, after=after)
                if page:
                    assert [e.seq for e in page] == list(range(after + 1, after + 1 + len(page)))
                    seen.extend(e.seq for e in page)
                    after = page[-1].seq

        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        reader = threading.Thread(target=lambda: _capture(follow, errors))
        for t in [*threads, reader]:
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        reader.join(60)
        assert not errors, errors
        total = writers * per_writer
        assert sorted(written) == list(range(1, total + 1))
        assert seen == list(range(1, total + 1))
        stored = stores[0].list_events(ORG, run.id, limit=1000)
        assert sorted((e.data["k"], e.data["i"]) for e in stored) == [
            (k, i) for k in range(writers) for i in range(per_writer)
        ]
        # A lone append to another org's run (or none) is refused like an unknown run.
        from agent_sdk.errors import NotFound

        stores[0].ensure_org("other")
        with pytest.raises(NotFound):
            stores[1].append_event("other", run.id, "x", {})
        with pytest.raises(NotFound):
            stores[1].append_event(ORG, new_id("run"), "x", {})
    finally:
        for store in stores:
            store.close()


def _capture(fn: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)
