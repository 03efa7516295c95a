"""Shared fixtures. Every test runs with its own HOME, config and data directory, so nothing a
test does reaches the user's real files, and no test depends on another's leftovers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_sdk.config import Settings, load_settings

REQUIRE_SERVICES = os.environ.get("AGENT_SDK_TEST_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean environment: no AGENT_SDK_* from the outside, HOME and XDG dirs under tmp_path."""
    for key in list(os.environ):
        if key.startswith("AGENT_SDK_") and key != "AGENT_SDK_TEST_REQUIRE_SERVICES":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("NO_COLOR", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return dict(os.environ)


@pytest.fixture
def settings(isolated_env: dict[str, str], tmp_path: Path) -> Settings:
    return load_settings(env=isolated_env, cwd=Path.cwd())


@pytest.fixture
def runtime(settings: Settings) -> Iterator[object]:
    from agent_sdk.core.runtime import Runtime

    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close(wait=True, timeout=10)


def _service_missing(what: str, reason: str) -> None:
    """A test that needs a service fails in CI (AGENT_SDK_TEST_REQUIRE_SERVICES=1) and skips
    with the reason on a laptop without it."""
    message = f"{what} is not reachable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (AGENT_SDK_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(message)


REDIS_URL = os.environ.get("AGENT_SDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for one test, flushed before and after (database 15 by default, so a
    developer's own data in database 0 is never touched)."""
    try:
        import redis
    except ImportError:
        _service_missing("Redis", "the redis package is not installed (pip install -e '.[test]')")
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        client.close()
        _service_missing(f"Redis at {REDIS_URL}", str(exc))
        raise
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()
