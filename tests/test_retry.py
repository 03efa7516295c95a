"""The retry policy: which errors are retried, and how delays grow."""

from __future__ import annotations

import pytest

from agent_sdk.core.retry import RetryPolicy, is_retryable
from agent_sdk.errors import (
    BackendUnavailable,
    InvalidInput,
    ModelError,
    PermissionDenied,
    QuotaExceeded,
    ToolError,
)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (ModelError("rate limited", retryable=True), True),
        (ModelError("bad request"), False),
        (BackendUnavailable("database is locked"), True),
        (InvalidInput("bad"), False),
        (PermissionDenied("no"), False),
        (QuotaExceeded("max_steps"), False),
        (ToolError("boom"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_errors_are_retried(error: BaseException, retry: bool) -> None:
    assert is_retryable(error) is retry


def test_delays_grow_exponentially_capped_with_full_jitter() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=10.0)
    assert [policy.delay(a, draw=lambda: 1.0) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(3, draw=lambda: 0.0) == 0.0
    draws = [policy.delay(3) for _ in range(1000)]
    assert 0 <= min(draws) < 0.5 and 3.5 < max(draws) <= 4.0  # spread over [0, 4]


def test_attempts_allowed() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.allows(a) for a in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy(max_retries=0).allows(1)
