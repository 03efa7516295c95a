"""No-op runs per second end to end on Postgres + Redis with 2 worker processes, against Celery
and RQ on the same machine, the same Redis server, in the same invocation.

What is timed, for every system alike: the workers are up and have finished one warm-up job;
then one submitting process creates N no-op jobs through the system's client API as fast as it
can, while the workers execute them; the clock stops when the N-th result is recorded. So the
figure covers submission, queueing, execution and recording the result, overlapped.

* ours: ``agent-sdk worker --count 2`` (AGENT_SDK_STORAGE_BACKEND=postgres,
  AGENT_SDK_QUEUE_BACKEND=redis), runs created with ``Runtime.runs.create``: each run is a row,
  its events and an audit record in Postgres, and a job in a Redis stream. Done = the run is
  ``succeeded`` in Postgres.
* Celery: ``celery worker --pool prefork --concurrency 2``, Redis broker, Celery's defaults
  (acknowledged before the task runs, prefetch 4, JSON), results in a Redis result backend.
  Done = the result is stored.
* RQ: ``rq worker-pool -n 2`` with RQ's default worker (a fork per job), and again with
  ``SimpleWorker`` (no fork), as RQ users choose for short jobs. Done = the job is in the
  finished registry.

Redis: a private ``redis-server`` on a free loopback port, without snapshots (``--save ""``),
started for this invocation and stopped after; databases 10 to 13 of it are used (10: our queue,
11: RQ, 12: Celery's broker, 13: Celery's results). ``--redis URL`` points at an existing server
instead, and then those four databases of it are flushed before and after. Postgres gets a fresh
schema, dropped after.

The "+Postgres/Redis" CPU column counts the Redis server the benchmark uses (its process id, from
``INFO server``) and, for agent-sdk, the Postgres backends serving its connections (found by
``application_name`` in ``pg_stat_activity``, CPU read per process from /proc); Celery and RQ
use no Postgres. Other clients of the Postgres cluster are not counted.

    python bench/scale_out.py [--runs 2000] [--rounds 1] [--only ours,celery,rq,rq-simple] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from _util import ROOT, agent_sdk_cmd, bench_env, free_port, spread

# The helpers live in a folder of their own: bench/queue.py would shadow the standard library's
# queue module, which psycopg, Celery and RQ import, in any process with bench/ on its path.
APPS = ROOT / "bench" / "_scale"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
SYSTEMS = ("ours", "celery", "rq", "rq-simple")
DB_OURS, DB_RQ, DB_CELERY_BROKER, DB_CELERY_RESULTS = 10, 11, 12, 13
LABELS = {
    "ours": "agent-sdk (Postgres + Redis)",
    "celery": "Celery (prefork -c 2, Redis)",
    "rq": "RQ (worker-pool -n 2, fork per job)",
    "rq-simple": "RQ (worker-pool -n 2, SimpleWorker)",
}


def _pythonpath() -> str:
    """The helpers' folder first, then whatever the caller had (e.g. a tree being compared)."""
    return os.pathsep.join(p for p in (str(APPS), os.environ.get("PYTHONPATH", "")) if p)


def _redis(base: str, db: int) -> str:
    return f"{base.rstrip('/')}/{db}"


@contextlib.contextmanager
def _private_redis(tmp: Path) -> Iterator[str]:
    """A redis-server of this benchmark's own on a free loopback port, no persistence."""
    port = free_port()
    log = (tmp / "redis.log").open("ab")
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                            stdout=log, stderr=log)  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    try:
        import redis

        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: see {tmp / 'redis.log'}"
                    ) from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _redis_pid(base: str) -> int:
    """The process id of the Redis server at ``base`` (it must run on this host)."""
    import redis

    client = redis.Redis.from_url(base)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def _group(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[int]:
    """A worker command in its own process group, stopped as a group (the pools fork or spawn
    children, and a stray child would eat CPU from the next system measured). Yields the
    group id, which _cpu uses to add up the CPU time of every process of the pool."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
    try:
        yield proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _cpu(pick: Callable[[int, str, int], bool]) -> dict[int, float]:
    """CPU seconds (user + system, with reaped children) of each process ``pick(pid, name,
    process group)`` selects, from /proc. Wall time on a shared 2-core machine moves with
    whatever else runs; CPU time per job much less, so both are reported."""
    out: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if pick(int(entry.name), name, int(fields[2])):
            ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            out[int(entry.name)] = ticks / os.sysconf("SC_CLK_TCK")
    return out


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass(frozen=True)
class Result:
    rate: float  # jobs per second, end to end
    cpu_ms: float  # CPU of the submitter and the worker pool, per job
    submit_cpu_ms: float  # the submitter's part of it
    service_cpu_ms: float  # CPU of Redis and of this system's Postgres backends, per job


def _measure(
    system: str,
    n: int,
    env: dict[str, str],
    pool: int,
    done: Callable[[], int],
    redis_pid: int,
    backends: Callable[[], set[int]] = set,
    label: str = "",
) -> Result:
    """Start the submitter, wait for its warm-up, let it go, and time until ``done()`` counts
    N results (the warm-up job is one more). ``backends`` names the Postgres server processes
    that serve this system (none for Celery and RQ)."""
    cmd = [sys.executable, str(APPS / "submit.py"), system, str(n)]
    sub = subprocess.Popen(cmd, env=env, cwd=APPS, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert sub.stdin is not None and sub.stdout is not None

    def clients() -> dict[int, float]:
        return _cpu(lambda pid, name, group: group == pool or pid == sub.pid)

    def services() -> dict[int, float]:
        mine = backends() | {redis_pid}
        return _cpu(lambda pid, name, group: pid in mine)

    try:
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{system}: the submitter failed to warm up")
        cpu0, service0 = clients(), services()
        submit0 = cpu0.get(sub.pid, 0.0)
        start = time.perf_counter()
        sub.stdin.write("go\n")
        sub.stdin.flush()
        deadline = start + max(120.0, n / 10)
        while done() < n + 1:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{system}: {done() - 1} of {n} done before the deadline")
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        cpu1 = clients()
        cpu, service = _spent(cpu0, cpu1), _spent(service0, services())
        submit_cpu = cpu1.get(sub.pid, 0.0) - submit0
        submit_s = float(sub.stdout.readline())
        result = Result(n / elapsed, 1000 * cpu / n, 1000 * submit_cpu / n, 1000 * service / n)
        print(f"  {label or system:<10} {result.rate:7.1f} jobs/s end to end (submissions "
              f"alone {n / submit_s:7.1f}/s); CPU per job {result.cpu_ms:5.2f} ms "
              f"({result.submit_cpu_ms:4.2f} submitting), "
              f"+{result.service_cpu_ms:5.2f} ms in Postgres/Redis", file=sys.stderr)  # fmt: skip
        return result
    finally:
        sub.kill()
        sub.wait()


def ours(n: int, tmp: Path, pg_url: str, redis_base: str) -> Result:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(pg_url, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    # The application name tells this benchmark's Postgres backends from everyone else's.
    db_url = f"{pg_url}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
    queue_url = _redis(redis_base, DB_OURS)
    _flush(queue_url)
    env = bench_env(
        tmp / "ours",
        AGENT_SDK_STORAGE_BACKEND="postgres",
        AGENT_SDK_DATABASE_URL=db_url,
        AGENT_SDK_QUEUE_BACKEND="redis",
        AGENT_SDK_REDIS_URL=queue_url + "?queue=bench-noop",
        AGENT_SDK_EXECUTION_MODE="queue",
        PYTHONPATH=_pythonpath(),
    )
    (tmp / "ours").mkdir(exist_ok=True)
    try:
        subprocess.run(agent_sdk_cmd("db", "migrate"), env=env, check=True, capture_output=True)
        count = psycopg.connect(db_url, autocommit=True)
        try:

            def done() -> int:
                row = count.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'")
                return int(row.fetchone()[0])  # type: ignore[index]

            def backends() -> set[int]:
                rows = count.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (schema,)
                )
                return {int(r[0]) for r in rows}

            with _group(
                agent_sdk_cmd("worker", "--count", "2"), env, tmp / "ours.log", tmp
            ) as pool:
                return _measure("ours", n, env, pool, done, _redis_pid(redis_base), backends)
        finally:
            count.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
        _flush(queue_url)


def celery(n: int, tmp: Path, redis_base: str) -> Result:
    import redis

    broker, results = _redis(redis_base, DB_CELERY_BROKER), _redis(redis_base, DB_CELERY_RESULTS)
    for url in (broker, results):
        _flush(url)
    env = dict(os.environ, BENCH_CELERY_BROKER=broker, BENCH_CELERY_RESULTS=results,
               PYTHONPATH=_pythonpath())  # fmt: skip
    cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
           "--concurrency", "2", "--loglevel", "WARNING"]  # fmt: skip
    client = redis.Redis.from_url(results)
    try:
        with _group(cmd, env, tmp / "celery.log", APPS) as pool:
            return _measure("celery", n, env, pool, lambda: int(client.dbsize()),
                            _redis_pid(redis_base))  # fmt: skip
    finally:
        client.close()
        for url in (broker, results):
            _flush(url)


def rq(n: int, tmp: Path, redis_base: str, *, simple: bool) -> Result:
    import redis
    from rq.registry import FinishedJobRegistry

    url = _redis(redis_base, DB_RQ)
    _flush(url)
    env = dict(os.environ, BENCH_RQ_REDIS=url, PYTHONPATH=_pythonpath())
    cmd = [sys.executable, "-m", "rq.cli", "worker-pool", "-n", "2", "-u", url, "-q"]
    if simple:
        cmd += ["-w", "rq.worker.SimpleWorker"]
    client = redis.Redis.from_url(url)
    finished = FinishedJobRegistry("bench-noop", connection=client)
    name = "rq-simple" if simple else "rq"
    try:
        with _group([*cmd, "bench-noop"], env, tmp / f"{name}.log", APPS) as pool:
            count = lambda: int(finished.count)  # noqa: E731
            return _measure("rq", n, env, pool, count, _redis_pid(redis_base), label=name)
    finally:
        client.close()
        _flush(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="no-op jobs per system per round")
    ap.add_argument("--rounds", type=int, default=1, help="repeat, interleaved; report medians")
    ap.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated subset")
    ap.add_argument("--redis", default=None,
                    help="use this Redis server instead of a private one (its databases "
                    "10-13 are flushed)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="10 jobs, one round (CI smoke)")
    ap.add_argument("--postgres", default=os.environ.get(
        "AGENT_SDK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.runs, args.rounds = 10, 1
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    results: dict[str, list[Result]] = {s: [] for s in chosen}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_base = args.redis or stack.enter_context(_private_redis(tmp))
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds}, {args.runs} jobs each", file=sys.stderr)
            for system in chosen:
                if system == "ours":
                    result = ours(args.runs, tmp, args.postgres, redis_base)
                elif system == "celery":
                    result = celery(args.runs, tmp, redis_base)
                else:
                    result = rq(args.runs, tmp, redis_base, simple=system == "rq-simple")
                results[system].append(result)
    print(f"No-op jobs end to end, 2 worker processes each, {args.runs} jobs, median of "
          f"{args.rounds} round(s), {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  {'':<38} {'jobs/s':>9} {'ours/this':>9}  {'CPU ms/job':>10} {'ours/this':>9}  "
          f"{'+Postgres/Redis':>15}")  # fmt: skip
    rate = {s: statistics.median(r.rate for r in v) for s, v in results.items()}
    cpu = {s: statistics.median(r.cpu_ms for r in v) for s, v in results.items()}
    service = {s: statistics.median(r.service_cpu_ms for r in v) for s, v in results.items()}
    for system in results:
        vs_rate = vs_cpu = ""
        if system != "ours" and "ours" in results:
            vs_rate, vs_cpu = (
                f"{rate['ours'] / rate[system]:9.2f}",
                f"{cpu['ours'] / cpu[system]:9.2f}",
            )
        print(f"  {LABELS[system]:<38} {rate[system]:9.1f} {vs_rate:>9}  {cpu[system]:10.2f} "
              f"{vs_cpu:>9}  {service[system]:15.2f}")  # fmt: skip
    print(
        "  (jobs/s: higher is better; CPU ms per job: lower is better. CPU is the submitter "
        "plus the worker pool;\n   Postgres/Redis: the benchmark's Redis server and this "
        "system's own Postgres backends.)"
    )
    if "ours" in results:
        for system in results:
            if system != "ours":
                per_round = [
                    o.rate / b.rate for o, b in zip(results["ours"], results[system], strict=True)
                ]
                print(f"  ratio jobs/s, agent-sdk / {LABELS[system]}: {spread(per_round)} "
                      f"(median [min..max] of {args.rounds} interleaved round(s), "
                      f"load {os.getloadavg()[0]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
