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


POSTGRES_URL = os.environ.get(
    "AGENT_SDK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A Postgres URL whose ``search_path`` is a fresh schema for one test, dropped afterwards,
    so tests never see each other's tables (nor a developer's own in ``public``)."""
    try:
        import psycopg
    except ImportError:
        _service_missing("Postgres", "psycopg is not installed (pip install -e '.[test]')")
        raise
    import uuid

    schema = f"t_{uuid.uuid4().hex}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=2)
    except psycopg.Error as exc:
        _service_missing(f"Postgres at {POSTGRES_URL}", str(exc).strip())
        raise
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs a test on each store: the SQLite default, or a fresh Postgres schema. It is set in
    the environment, so the CLI and every runtime or server built from it use the same store."""
    if request.param == "postgres":
        monkeypatch.setenv("AGENT_SDK_STORAGE_BACKEND", "postgres")
        monkeypatch.setenv("AGENT_SDK_DATABASE_URL", request.getfixturevalue("postgres_url"))
    return str(request.param)
