"""Shared fixtures. Every test runs with its own HOME, config and data directory, so nothing a
test does reaches the user's real files, and no test depends on another's leftovers."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from agent_sdk.config import Settings, load_settings

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from agent_sdk.core.runtime import Runtime

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


def _service_missing(what: str, reason: str, *, module_level: bool = False) -> None:
    """A test that needs a service fails in CI (AGENT_SDK_TEST_REQUIRE_SERVICES=1) and skips
    with the reason on a laptop without it."""
    message = f"{what} is not reachable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (AGENT_SDK_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(message, allow_module_level=module_level)


def require_module(name: str, service: str) -> ModuleType:
    """Import the driver a test file needs, at the top of that file. Unlike
    ``pytest.importorskip`` it obeys AGENT_SDK_TEST_REQUIRE_SERVICES: in CI a missing driver
    fails the run (a broken install must not pass as "skipped"); elsewhere the file skips."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _service_missing(
            service,
            f"{name} cannot be imported ({exc}); install the test extras: pip install -e '.[test]'",
            module_level=True,
        )
        raise


def _worker_redis_url(url: str, worker: str | None) -> str:
    """Under pytest-xdist each worker flushes a database of its own: the one the URL names
    (15 by default) minus the worker's index, so gw0 has 15, gw1 14, and so on, down to 1."""
    named = re.fullmatch(r"gw([0-9]+)", worker or "")  # ASCII digits only: "gw\u0661" is not one
    index = int(named.group(1)) if named else 0
    if index == 0:
        return url
    match = re.fullmatch(r"(rediss?://[^/?#]*)(?:/(\d*))?([?#].*)?", url)
    if match is None:
        raise pytest.UsageError(f"AGENT_SDK_TEST_REDIS_URL is not a redis:// URL: {url!r}")
    base = int(match.group(2) or 0)
    if base - index < 1:  # database 0 is where a developer's own data usually lives
        raise pytest.UsageError(
            f"AGENT_SDK_TEST_REDIS_URL names database {base}, too low for xdist worker {worker}:"
            f" each worker takes the database {base} minus its index and never 0;"
            " run fewer workers (-n) or name a higher database"
        )
    return f"{match.group(1)}/{base - index}{match.group(3) or ''}"


REDIS_URL = _worker_redis_url(
    os.environ.get("AGENT_SDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    os.environ.get("PYTEST_XDIST_WORKER"),
)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for one test, flushed before and after (database 15 by default, so a
    developer's own data in database 0 is never touched; under xdist, 15 minus the worker's
    index, so two workers never flush each other's)."""
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


@contextlib.contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A Postgres URL whose ``search_path`` is a fresh schema, dropped on leaving, so tests
    never see each other's tables (nor a developer's own in ``public``)."""
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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh Postgres schema for one test (see fresh_postgres_schema)."""
    with fresh_postgres_schema() as url:
        yield url


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


# -- the HTTP API on each store (``engine``), for tests of what reaches the edge -------------------
@pytest.fixture
def edge_settings(engine: str) -> Settings:
    return load_settings(env=dict(os.environ), cwd=Path.cwd())


@pytest.fixture
def edge_runtime(edge_settings: Settings) -> Iterator[Runtime]:
    from agent_sdk.core.runtime import Runtime

    rt = Runtime(edge_settings)
    try:
        yield rt
    finally:
        rt.close(wait=True, timeout=10)


@pytest.fixture
def edge_client(edge_settings: Settings, edge_runtime: Runtime) -> Iterator[TestClient]:
    import warnings

    from agent_sdk.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from starlette.testclient import TestClient

    with TestClient(create_app(edge_settings, runtime=edge_runtime)) as client:
        yield client


@pytest.fixture
def edge_auth(edge_settings: Settings, edge_client: TestClient) -> dict[str, str]:
    """The admin's bearer header (the token exists once the app has started)."""
    return {"Authorization": f"Bearer {edge_settings.admin_token_path.read_text().strip()}"}
