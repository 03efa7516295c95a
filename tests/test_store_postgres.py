"""The Postgres store on a real PostgreSQL: every store contract unchanged, plus what only this
store has (pooling, advisory-locked migrations, masked URLs). Each test gets a fresh schema (the
``postgres_url`` fixture of conftest.py); without a server these tests skip, and fail under
AGENT_SDK_TEST_REQUIRE_SERVICES=1."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from conftest import require_module
from contracts.audit_store_contract import AuditStoreContract
from contracts.idempotency_store_contract import IdempotencyStoreContract
from contracts.key_store_contract import KeyStoreContract
from contracts.store_contract import ORG, OTHER, StoreContract, make_run

from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, NotFound
from agent_sdk.masking import mask_url
from agent_sdk.store import open_store
from agent_sdk.store.migrations import load_migrations
from agent_sdk.store.postgres import PostgresStore
from agent_sdk.store.workers import WorkerInfo

require_module("psycopg", "Postgres")


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore.from_url(postgres_url)
    try:
        s.migrate()
        yield s
    finally:
        s.close()


@pytest.fixture
def store_with_other_org(store: PostgresStore) -> PostgresStore:
    store.ensure_org(OTHER)
    return store


class TestPostgresStore(StoreContract):
    """The shared Store contract, on a fresh schema per test."""


class TestPostgresKeyStore(KeyStoreContract):
    """The KeyStore contract, on a fresh schema per test (with the second org it uses)."""

    @pytest.fixture
    def store(self, store_with_other_org: PostgresStore) -> PostgresStore:
        return store_with_other_org


class TestPostgresAuditStore(AuditStoreContract):
    """The AuditStore contract, on a fresh schema per test."""

    @pytest.fixture
    def twin(self, postgres_url: str) -> Iterator[PostgresStore]:
        s = PostgresStore.from_url(postgres_url)
        yield s
        s.close()


class TestPostgresIdempotencyStore(IdempotencyStoreContract):
    """The IdempotencyStore contract, on a fresh schema per test (with the second org)."""

    @pytest.fixture
    def store(self, store_with_other_org: PostgresStore) -> PostgresStore:
        return store_with_other_org


# -- what only the Postgres store has ------------------------------------------------------------
def test_open_store_knows_both_schemes(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        s = open_store(url, busy_timeout=3.0)  # a SQLite option is ignored, not an error
        try:
            assert isinstance(s, PostgresStore)
            assert len(s.migration_status()) == len(load_migrations())
        finally:
            s.close()


def test_migrations_mirror_sqlite_and_are_recorded(postgres_url: str) -> None:
    s = PostgresStore.from_url(postgres_url)
    try:
        sqlite_names = [(m.version, m.name) for m in load_migrations()]
        status = s.migration_status()
        assert [(m.version, m.name) for m in status] == sqlite_names
        assert all(m.applied_at is None for m in status)
        with pytest.raises(Conflict, match="pending; run `agent-sdk db migrate`"):
            s.check()
        with pytest.raises(Conflict) as info:
            s.get_run(ORG, "run_x")
        assert info.value.hint == "run `agent-sdk db migrate`"
        assert [m.version for m in s.migrate()] == [v for v, _ in sqlite_names]
        assert s.migrate() == []
        s.check()
        assert all(m.applied_at for m in s.migration_status())
    finally:
        s.close()


def test_two_stores_migrating_at_once_apply_each_migration_once(postgres_url: str) -> None:
    stores = [PostgresStore.from_url(postgres_url) for _ in range(3)]
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def migrate(s: PostgresStore) -> None:
        barrier.wait()
        try:
            results.append([m.version for m in s.migrate()])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in load_migrations()]
        stores[0].check()
    finally:
        for s in stores:
            s.close()


def test_ids_sort_bytewise(store: PostgresStore) -> None:
    # Mixed-case ids: only byte order ("C") puts "B" before "a", as the SQLite store does.
    for run_id in ("run_a", "run_B", "run_Z", "run_b"):
        make_run(store, id=run_id)
    assert [r.id for r in store.list_runs(ORG).items] == ["run_b", "run_a", "run_Z", "run_B"]


def test_workers_register_beat_and_leave(store: PostgresStore) -> None:
    w = WorkerInfo(
        "host:1", "host", 1, "2030-01-01T00:00:00.000000Z", "2030-01-01T00:00:00.000000Z"
    )
    store.register_worker(w)
    store.register_worker(w)  # a restarted worker reuses its name
    assert store.heartbeat_worker("host:1", "2030-01-01T00:00:05.000000Z", 2)
    [got] = store.list_workers()
    assert (got.heartbeat_at, got.runs_in_flight) == ("2030-01-01T00:00:05.000000Z", 2)
    store.remove_worker("host:1")
    assert store.list_workers() == []
    assert not store.heartbeat_worker("host:1", "2030-01-01T00:00:06.000000Z", 0)


def test_foreign_key_failures_are_not_found(store: PostgresStore) -> None:
    with pytest.raises(NotFound):
        store.create_session("no-such-org", "s")
    with pytest.raises(NotFound):
        store.append_event(ORG, "run_missing", "x", {})


def test_unreachable_server_names_the_url_with_the_password_masked() -> None:
    url = "postgresql://alice:s3cret@127.0.0.1:1/db"
    with pytest.raises(BackendUnavailable) as info:
        PostgresStore.from_url(url, connect_timeout=1)
    assert "s3cret" not in str(info.value) and "alice:***@127.0.0.1:1/db" in str(info.value)


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert mask_url("postgresql://u@h/db?password=p&x=1") == "postgresql://u@h/db?password=***&x=1"
    assert mask_url("postgresql://h/db") == "postgresql://h/db"


def test_a_url_of_another_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PostgresStore.from_url("mysql://u:p@h/db")


def test_closed_store_is_unavailable(postgres_url: str) -> None:
    s = PostgresStore.from_url(postgres_url)
    s.close()
    with pytest.raises(BackendUnavailable):
        s.get_meta("k")
