"""When a failed attempt of a run is tried again, and after how long.

Which errors are retryable is an explicit table, not a guess from the exception's name: a model
provider's throttling or outage (``ModelError(retryable=True)``) and an unreachable or locked
backend are; bad input, a refused permission, an exhausted quota or a non-retryable model error
are not, because trying again would fail the same way. A worker that died mid-run (its lease
expired) is always retried: the run itself did nothing wrong.

Delays grow exponentially with "full jitter" (a uniform draw between 0 and the exponential
bound): retries of many runs failing together spread out instead of arriving in waves, which is
what lets a recovering provider recover.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sdk.errors import AgentSDKError, BackendUnavailable, ModelError

if TYPE_CHECKING:
    from agent_sdk.config import Settings


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, ModelError):
        return error.retryable
    if isinstance(error, BackendUnavailable):
        return True
    if isinstance(error, AgentSDKError):
        return False
    return False  # a bug: retrying a deterministic failure only repeats it


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt (``AGENT_SDK_RETRY_MAX``), waiting up to
    ``base_delay * 2**(retry - 1)`` seconds, capped at ``max_delay``."""

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retry.max, settings.retry.base_delay, settings.retry.max_delay)

    def allows(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1 = the first) may be followed by another."""
        return attempt <= self.max_retries

    def delay(self, attempt: int, *, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the attempt after ``attempt`` (full jitter)."""
        bound = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        return bound * draw()
