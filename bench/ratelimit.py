"""Rate-limiter hits per second, one thread, against the floor of each store in the same run:
the Redis limiter (one EVALSHA of the GCRA script per hit) against a bare ``INCR`` loop on the
same Redis, and the memory limiter against a dict increment under a lock.

    python bench/ratelimit.py [--hits 20000] [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from _util import row

from agent_sdk.security.ratelimit import MemoryRateLimiter, RedisRateLimiter

KEYS = [f"key_{i}" for i in range(100)]  # a few keys, as a server with 100 API keys sees


def per_second(step: Callable[[str], object], n: int) -> float:
    for i in range(min(n, 1000)):  # warm up: connections, script cache
        step(KEYS[i % len(KEYS)])
    t = time.perf_counter()
    for i in range(n):
        step(KEYS[i % len(KEYS)])
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hits", type=int, default=20_000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = ap.parse_args()
    import redis

    rate, burst = 1e6, 1_000_000  # never refuses: measure the step, not 429s

    memory = MemoryRateLimiter()
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def dict_incr(key: str) -> None:
        with lock:
            counts[key] = counts.get(key, 0) + 1

    mem = per_second(lambda k: memory.hit(k, rate=rate, burst=burst), args.hits * 5)
    floor_mem = per_second(dict_incr, args.hits * 5)

    client = redis.Redis.from_url(args.redis)
    try:
        with RedisRateLimiter(args.redis) as shared:
            red = per_second(lambda k: shared.hit("bench:" + k, rate=rate, burst=burst), args.hits)
        floor_red = per_second(lambda k: client.incr("agent-sdk:bench:" + k), args.hits)
        client.delete(*[f"agent-sdk:bench:{k}" for k in KEYS])
        client.delete(*[f"agent-sdk:rl:bench:{k}" for k in KEYS])
    finally:
        client.close()

    print(f"Rate-limiter hits/s, one thread, {args.hits} Redis hits, {args.hits * 5} memory hits")
    print(row("memory limiter (vs dict += 1 under a lock)", mem, floor_mem, "hit/s", True))
    print(row("Redis limiter (vs bare INCR, same Redis)", red, floor_red, "hit/s", True))


if __name__ == "__main__":
    main()
