"""How a long-running process lives through an outage of its queue or store.

A broker restart, a network blip or a full disk must not kill a worker: each failing call backs
off with jitter and tries again, and the process says once that the backend is unreachable and
once that it is back, however many calls failed in between (one line per state change, not one
per retry, so an outage of an hour is two lines in the log, not thousands).

Why not tenacity: the retry here is not around one call. Several loops of one worker (leasing,
lease heartbeats, settling jobs) share one view of the backend's health, the wait must end early
when the worker is told to stop, and the state changes are what gets logged. That is this small
class; tenacity's ``AsyncRetrying`` would wrap each call separately and still need all of it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

# Backoff: from BASE seconds, doubling per consecutive failure up to CAP. "Equal jitter" (half
# fixed, half random) so N workers that lost the broker together do not come back in lockstep,
# and no wait is ever near zero (which would spin against a dead broker).
BASE = 0.25
CAP = 5.0


class Outage:
    """The health of one backend as one process sees it. Not thread-safe: use it from one
    event loop (every worker call into the queue is awaited on the worker's loop)."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        base: float = BASE,
        cap: float = CAP,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.what = what
        self.log = log
        self.base = base
        self.cap = cap
        self.clock = clock
        self.rand = rand
        self.failures = 0  # consecutive failed calls; 0 while the backend answers
        self.since: float | None = None  # when it became unreachable

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def failed(self, message: str) -> float:
        """Record a failed call; return how long to wait before the next one."""
        if self.failures == 0:
            self.since = self.clock()
            self.log.warning("%s unreachable: %s; retrying with backoff", self.what, message)
        self.failures += 1
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30))
        return ceiling / 2 + self.rand(0.0, ceiling / 2)

    def ok(self) -> None:
        """Record a call that succeeded."""
        if self.failures:
            down = self.clock() - (self.since or self.clock())
            self.log.warning(
                "%s reachable again after %.1fs (%d failed calls)", self.what, down, self.failures
            )
        self.failures = 0
        self.since = None


__all__ = ["CAP", "BASE", "Outage"]
