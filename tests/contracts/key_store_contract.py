"""The KeyStore contract: what every store (SQLite today, Postgres later) does with API keys.

Use it by subclassing with a ``store`` fixture that yields a fresh, migrated store::

    class TestSQLiteKeyStore(KeyStoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

Tests here use only the Store and KeyStore protocols, never a backend's internals.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import pytest

from agent_sdk.errors import Conflict, InvalidInput, NotFound
from agent_sdk.ids import utcnow
from agent_sdk.records import ApiKey
from agent_sdk.security.api_key_secrets import display_prefix, new_key_id
from agent_sdk.store.api_keys import KeyStore
from agent_sdk.store.base import Store
from contracts.store_contract import HOSTILE, ORG, OTHER, not_found_message, walk


class Stores(Store, KeyStore, Protocol):
    """What the fixture yields once Store extends KeyStore."""


def make_key(org_id: str = ORG, **fields: Any) -> ApiKey:
    key_id = fields.pop("id", None) or new_key_id()
    values: dict[str, Any] = {
        "id": key_id,
        "org_id": org_id,
        "name": "ci",
        "prefix_display": display_prefix(key_id),
        "last4": "abcd",
        "role": "viewer",
        "scopes": ["runs:read", "sessions:read"],
        "created_at": utcnow(),
        "created_by": "tester",
    }
    values.update(fields)
    return ApiKey(**values)


def insert(store: Stores, org_id: str = ORG, secret_hash: str = "h0", **fields: Any) -> ApiKey:
    return store.insert_api_key(make_key(org_id, **fields), secret_hash)


class KeyStoreContract:
    """Mixin of contract tests; the subclass provides the ``store`` fixture."""

    def test_a_key_round_trips_every_field(self, store: Stores) -> None:
        key = make_key(
            name="deploy bot",
            role="custom",
            scopes=["runs:read", "admin:platform"],
            expires_at="2999-01-01T00:00:00.000000Z",
            rotated_at=utcnow(),
            last_used_at=utcnow(),
            rate_per_second=2.5,
            burst=10,
            ip_allowlist=["10.0.0.0/8", "2001:db8::/32"],
        )
        assert store.insert_api_key(key, "hash") == key
        assert store.get_api_key(ORG, key.id) == key
        assert store.list_api_keys(ORG).items == [key]

    def test_a_key_never_carries_its_hash(self, store: Stores) -> None:
        key = insert(store, secret_hash="s3cr3t-hash")
        for read in (store.get_api_key(ORG, key.id), store.list_api_keys(ORG).items[0]):
            assert "s3cr3t-hash" not in repr(read.to_dict())
            assert not any("hash" in name for name in read.to_dict())

    @pytest.mark.parametrize("name", HOSTILE)
    def test_hostile_names_round_trip(self, store: Stores, name: str) -> None:
        key = insert(store, name=name, created_by=name)
        assert store.get_api_key(ORG, key.id).name == name
        assert store.get_api_key(ORG, key.id).created_by == name
        assert store.update_api_key(ORG, key.id, name=name + "!").name == name + "!"

    def test_another_orgs_key_is_not_found_like_an_unknown_one(self, store: Stores) -> None:
        store.ensure_org(OTHER)
        theirs = insert(store, OTHER)
        mine = insert(store)
        with pytest.raises(NotFound):
            store.get_api_key(ORG, theirs.id)
        assert not_found_message(lambda k: store.get_api_key(ORG, k), theirs.id) == (
            not_found_message(lambda k: store.get_api_key(ORG, k), new_key_id())
        )
        with pytest.raises(NotFound):
            store.update_api_key(ORG, theirs.id, name="taken over")
        assert store.get_api_key(OTHER, theirs.id).name == "ci"
        assert [k.id for k in store.list_api_keys(ORG).items] == [mine.id]
        assert [k.id for k in store.list_api_keys(OTHER).items] == [theirs.id]
        assert store.list_api_keys("no-such-org").items == []

    def test_duplicate_ids_conflict_and_unknown_orgs_are_not_found(self, store: Stores) -> None:
        key = insert(store)
        with pytest.raises(Conflict):
            store.insert_api_key(key, "again")
        with pytest.raises(NotFound, match="no-such-org"):
            insert(store, "no-such-org")

    def test_listing_is_newest_first_and_paginates(self, store: Stores) -> None:
        ids = [insert(store).id for _ in range(7)]
        page = store.list_api_keys(ORG, limit=3)
        assert [k.id for k in page.items] == ids[::-1][:3] and page.next_cursor
        every = walk(lambda c: store.list_api_keys(ORG, limit=3, cursor=c))
        assert [k.id for k in every] == ids[::-1]
        assert store.list_api_keys(ORG, limit=7).next_cursor is None

    def test_a_foreign_or_forged_cursor_is_invalid_input(self, store: Stores) -> None:
        insert(store)
        insert(store)
        store.create_session(ORG, "s1")
        store.create_session(ORG, "s2")
        session_cursor = store.list_sessions(ORG, limit=1).next_cursor
        assert session_cursor
        with pytest.raises(InvalidInput, match="cursor"):
            store.list_api_keys(ORG, cursor=session_cursor)
        with pytest.raises(InvalidInput, match="cursor"):
            store.list_api_keys(ORG, cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            store.list_api_keys(ORG, limit=0)

    def test_update_sets_fields_and_returns_the_key(self, store: Stores) -> None:
        key = insert(store)
        when = utcnow()
        updated = store.update_api_key(
            ORG,
            key.id,
            name="renamed",
            scopes=["runs:write"],
            ip_allowlist=["192.0.2.0/24"],
            revoked_at=when,
            rate_per_second=1.0,
            burst=3,
        )
        assert updated == dataclasses.replace(
            key,
            name="renamed",
            scopes=["runs:write"],
            ip_allowlist=["192.0.2.0/24"],
            revoked_at=when,
            rate_per_second=1.0,
            burst=3,
        )
        assert store.get_api_key(ORG, key.id) == updated
        assert store.update_api_key(ORG, key.id) == updated  # nothing to set: a read
        cleared = store.update_api_key(ORG, key.id, revoked_at=None, ip_allowlist=[])
        assert (cleared.revoked_at, cleared.ip_allowlist) == (None, [])

    @pytest.mark.parametrize("field", ["id", "org_id", "created_at", "created_by", "nope"])
    def test_fixed_and_unknown_fields_cannot_be_updated(self, store: Stores, field: str) -> None:
        key = insert(store)
        with pytest.raises(InvalidInput, match=field):
            store.update_api_key(ORG, key.id, **{field: "x"})
        assert store.get_api_key(ORG, key.id) == key

    def test_update_of_an_unknown_key_is_not_found(self, store: Stores) -> None:
        with pytest.raises(NotFound):
            store.update_api_key(ORG, new_key_id(), name="x")

    def test_find_for_auth_returns_the_key_and_its_hashes(self, store: Stores) -> None:
        store.ensure_org(OTHER)
        key = insert(store, OTHER, secret_hash="current")
        assert store.find_api_key_for_auth(key.id) == (key, "current", None, None)
        until = utcnow()
        store.update_api_key(
            OTHER, key.id, secret_hash="new", previous_hash="current", previous_valid_until=until
        )
        found = store.find_api_key_for_auth(key.id)
        assert found is not None and found[1:] == ("new", "current", until)
        assert store.find_api_key_for_auth(new_key_id()) is None
        assert store.find_api_key_for_auth("'; DROP TABLE api_keys; --") is None

    def test_touch_sets_last_used_and_never_moves_it_back(self, store: Stores) -> None:
        key = insert(store)
        early, late = "2030-01-01T00:00:00.000000Z", "2030-01-02T00:00:00.000000Z"
        store.touch_api_key(key.id, late)
        assert store.get_api_key(ORG, key.id).last_used_at == late
        store.touch_api_key(key.id, early)
        assert store.get_api_key(ORG, key.id).last_used_at == late
        store.touch_api_key(new_key_id(), late)  # an unknown key: nothing happens

    def test_a_failed_transaction_leaves_no_key(self, store: Stores) -> None:
        key = make_key()
        with pytest.raises(RuntimeError), store.transaction():
            store.insert_api_key(key, "h")
            raise RuntimeError("boom")
        with pytest.raises(NotFound):
            store.get_api_key(ORG, key.id)

    # -- the generation: what lets a process trust a key it verified before ------------------
    @pytest.mark.parametrize(
        "fields",
        [
            {"revoked_at": "2030-01-01T00:00:00.000000Z"},
            {"secret_hash": "h1"},
            {"previous_hash": "h0", "previous_valid_until": "2030-01-01T00:00:00.000000Z"},
            {"scopes": ["runs:read"]},
            {"role": "admin"},
            {"expires_at": "2030-01-01T00:00:00.000000Z"},
            {"rate_per_second": 5.0},
            {"burst": 3},
            {"ip_allowlist": ["10.0.0.0/8"]},
        ],
    )
    def test_every_change_authentication_sees_moves_the_generation(
        self, store: Stores, fields: dict[str, Any]
    ) -> None:
        key = insert(store)
        before = store.api_key_generation()
        assert isinstance(before, int)
        store.update_api_key(ORG, key.id, **fields)
        after = store.api_key_generation()
        assert after is not None and after != before
        store.update_api_key(ORG, key.id, **fields)  # the same values again: still a change
        assert store.api_key_generation() not in (before, after)

    def test_use_a_rename_and_a_new_key_leave_the_generation(self, store: Stores) -> None:
        key = insert(store)
        before = store.api_key_generation()
        store.touch_api_key(key.id, utcnow())  # authentication itself writes this
        store.update_api_key(ORG, key.id, name="renamed", last_used_at=utcnow())
        insert(store)  # nobody can have verified a key that did not exist
        assert store.api_key_generation() == before

    def test_a_rolled_back_revocation_leaves_the_generation(self, store: Stores) -> None:
        key = insert(store)
        before = store.api_key_generation()
        with pytest.raises(RuntimeError), store.transaction():
            store.update_api_key(ORG, key.id, revoked_at=utcnow())
            raise RuntimeError("boom")
        assert store.api_key_generation() == before
        with store.transaction():
            store.update_api_key(ORG, key.id, revoked_at=utcnow())
        assert store.api_key_generation() != before
