"""API keys: the token format, the pepper, the key service's lifecycle (create, list, show,
rotate, revoke, expire, bootstrap), authentication, roles and scopes, and the KeyStore contract
on SQLite."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from contracts.key_store_contract import KeyStoreContract
from contracts.store_contract import OTHER, walk

from agent_sdk.config import Settings
from agent_sdk.core.api_keys import KeyService
from agent_sdk.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from agent_sdk.records import Principal
from agent_sdk.security import api_key_secrets as keys
from agent_sdk.security import scopes
from agent_sdk.store.sqlite import SQLiteStore
from agent_sdk.times import iso

ORG = "default"
TOKEN_RE = re.compile(r"asdk_[0-9A-Za-z]{16}_[0-9A-Za-z]{38}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "keys.db")
    s.migrate()
    s.ensure_org(OTHER)
    yield s
    s.close()


class TestSQLiteKeyStore(KeyStoreContract):
    """The KeyStore contract on a fresh SQLite file per test (the ``store`` fixture above)."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(settings: Settings, store: SQLiteStore, clock: Clock) -> KeyService:
    return KeyService(settings, store, clock=clock)


def create(service: KeyService, org_id: str = ORG, **kw: Any) -> tuple[Any, str]:
    kw.setdefault("name", "ci")
    kw.setdefault("created_by", "tester")
    return service.create(org_id, **kw)


def refused(service: KeyService, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        service.authenticate(token)
    return info.value.message


# -- the token format ----------------------------------------------------------------------------
def test_generated_tokens_have_the_documented_shape() -> None:
    key_id, token = keys.generate()
    assert TOKEN_RE.fullmatch(token) and len(token) == keys.TOKEN_LENGTH == 60
    assert token.startswith(f"asdk_{key_id}_")
    parsed_id, secret = keys.parse(token)
    assert parsed_id == key_id and len(secret) == 32 and secret in token
    assert keys.display(token) == f"asdk_{key_id}_…{token[-4:]}"
    assert secret not in keys.display(token)


def test_rotation_tokens_keep_the_id_and_change_the_secret() -> None:
    key_id, first = keys.generate()
    same_id, second = keys.generate(key_id)
    assert same_id == key_id and first != second
    assert keys.parse(second)[0] == key_id
    with pytest.raises(ValueError):
        keys.generate("not-an-id")


def test_key_ids_sort_by_creation_and_are_unique() -> None:
    ids = [keys.new_key_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({keys.generate()[1] for _ in range(200)}) == 200


def test_every_single_character_change_is_refused() -> None:
    _, token = keys.generate()
    for i, char in enumerate(token):
        for other in {"0", "a", "Z", "_"} - {char}:
            with pytest.raises(AuthenticationError, match="malformed API key"):
                keys.parse(token[:i] + other + token[i + 1 :])


@pytest.mark.parametrize(
    "bad",
    ["", "asdk_", "Bearer asdk_x", "x" * 60, "asdk_admin_" + "a" * 49, "\x00" * 60],
)
def test_bad_shapes_are_malformed(bad: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed API key") as info:
        keys.parse(bad)
    assert info.value.hint and "60 characters" in info.value.hint


def test_whitespace_and_truncation_are_refused() -> None:
    _, token = keys.generate()
    for bad in (token + "\n", " " + token, token[:-1], token + "a", token.upper()):
        with pytest.raises(AuthenticationError):
            keys.parse(bad)


def test_keyed_hash_is_an_hmac_that_depends_on_the_pepper() -> None:
    _, token = keys.generate()
    secret = keys.parse(token)[1]
    digest = keys.keyed_hash(b"pepper-one-0123456789", secret)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != secret and secret not in digest
    assert digest == keys.keyed_hash(b"pepper-one-0123456789", secret)
    assert digest != keys.keyed_hash(b"pepper-two-0123456789", secret)


class NoStore:
    """A store double that fails the test on any use."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used: {name}")


def test_a_bad_checksum_is_refused_without_touching_the_store(settings: Settings) -> None:
    service = KeyService(settings.replace(api_key_pepper="p" * 32), NoStore())  # type: ignore[arg-type]
    _, token = keys.generate()
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, token[:30], "asdk_" + "0" * 55, "", "garbage"):
        assert refused(service, bad) == "invalid API key"


# -- the pepper ----------------------------------------------------------------------------------
def test_the_pepper_setting_wins(settings: Settings) -> None:
    assert keys.load_pepper(settings.replace(api_key_pepper="x" * 20)) == b"x" * 20
    assert not settings.pepper_path.exists()


def test_a_short_pepper_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="AGENT_SDK_API_KEY_PEPPER"):
        keys.load_pepper(settings.replace(api_key_pepper="short"))


def test_the_pepper_file_is_created_once_private_and_reused(settings: Settings) -> None:
    path = settings.pepper_path
    assert not path.exists()
    first = keys.load_pepper(settings)
    assert re.fullmatch(rb"[0-9a-f]{64}", first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_pepper(settings) == first
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    # Copying the file's content into the variable keeps every key valid.
    assert keys.load_pepper(settings.replace(api_key_pepper=path.read_text().strip())) == first


def test_an_unreadable_pepper_is_a_config_error(settings: Settings) -> None:
    path = settings.pepper_path
    path.parent.mkdir(parents=True)
    path.mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match="pepper"):
        keys.load_pepper(settings)


def _load_in_child(settings: Settings, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(keys.load_pepper(settings))


@pytest.mark.slow
def test_processes_starting_at_once_agree_on_one_pepper(settings: Settings) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_load_in_child, args=(settings, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    peppers = {out.get(timeout=60) for _ in range(n)}
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert peppers == {keys.load_pepper(settings)}


def test_threads_starting_at_once_agree_on_one_pepper(settings: Settings) -> None:
    barrier = threading.Barrier(8)
    seen: list[bytes] = []

    def load() -> None:
        barrier.wait()
        seen.append(keys.load_pepper(settings))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1


# -- roles and scopes ----------------------------------------------------------------------------
def test_the_scopes_of_each_role() -> None:
    assert scopes.scopes_for("viewer") == {"runs:read", "sessions:read"}
    assert scopes.scopes_for("operator") == {"runs:read", "sessions:read", "runs:write"}
    assert scopes.scopes_for("admin") == {
        "runs:read",
        "sessions:read",
        "runs:write",
        "admin:keys",
        "admin:audit",
        "admin:orgs",
    }
    assert all("admin:platform" not in s for s in scopes.ROLES.values())


def test_explicit_scopes_replace_the_roles() -> None:
    assert scopes.scopes_for("admin", ["runs:read"]) == {"runs:read"}
    assert scopes.scopes_for("viewer", ["admin:platform", " runs:write "]) == {
        "admin:platform",
        "runs:write",
    }
    assert scopes.scopes_for("viewer", []) == scopes.ROLES["viewer"]
    assert scopes.parse_scopes("runs:read") == {"runs:read"}


def test_unknown_scopes_and_roles_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="'runs:delete'") as info:
        scopes.parse_scopes(["runs:read", "runs:delete"])
    assert info.value.hint and "admin:platform" in info.value.hint
    with pytest.raises(InvalidInput, match="'root'") as info:
        scopes.scopes_for("root")
    assert info.value.hint and "operator" in info.value.hint


def test_require_names_the_missing_scope() -> None:
    scopes.require(frozenset({"runs:read"}), "runs:read")
    with pytest.raises(PermissionDenied, match="this key lacks the scope 'runs:write'"):
        scopes.require(frozenset({"runs:read"}), "runs:write")


def test_every_scope_is_documented_in_the_roles_table() -> None:
    doc = scopes.__doc__ or ""
    for scope in scopes.SCOPES:
        assert f"``{scope}``" in doc
    for role in scopes.ROLES:
        assert re.search(rf"^{role}\s", doc, re.M)


def test_principal_scopes_and_orgs() -> None:
    viewer = Principal("api_key:x", ORG, frozenset({"runs:read"}), "api_key", key_id="x")
    assert viewer.can("runs:read") and not viewer.can("runs:write")
    assert viewer.acts_in(ORG) and not viewer.acts_in(OTHER)
    platform = Principal("ops", ORG, frozenset({"admin:platform"}), "jwt")
    assert platform.acts_in(OTHER) and not platform.can("runs:read")
    assert json.loads(json.dumps(viewer.to_dict()))["scopes"] == ["runs:read"]


# -- create, list, show --------------------------------------------------------------------------
def test_create_returns_the_token_once_and_stores_only_a_hash(
    service: KeyService, store: SQLiteStore, clock: Clock
) -> None:
    key, token = create(service, role="operator")
    assert TOKEN_RE.fullmatch(token) and keys.parse(token)[0] == key.id
    assert key.prefix_display == f"asdk_{key.id}_" and key.last4 == token[-4:]
    assert key.role == "operator" and key.scopes == ["runs:read", "runs:write", "sessions:read"]
    assert key.created_at == iso(clock.now) and key.created_by == "tester"
    assert service.get(ORG, key.id) == key
    found = store.find_api_key_for_auth(key.id)
    assert found is not None
    secret = keys.parse(token)[1]
    assert found[1] == keys.keyed_hash(service.pepper, secret) != secret


def test_the_database_file_never_holds_a_secret(service: KeyService, store: SQLiteStore) -> None:
    tokens = [create(service, name=f"k{i}")[1] for i in range(3)]
    tokens.append(service.rotate(ORG, keys.parse(tokens[0])[0], grace_seconds=60)[1])
    store.close()
    raw = b"".join(
        p.read_bytes() for p in store.path.parent.iterdir() if p.name.startswith("keys.db")
    )
    assert b"api_keys" in raw  # the files read are the database's
    for token in tokens:
        secret = keys.parse(token)[1]
        assert secret.encode() not in raw and token.encode() not in raw


def test_listing_shows_the_prefix_and_last_four_only(service: KeyService) -> None:
    made = [create(service, name=f"key {i}") for i in range(5)]
    listed = walk(lambda c: service.list(ORG, limit=2, cursor=c))
    assert [k.id for k in listed] == [k.id for k, _ in made][::-1]
    text = json.dumps([k.to_dict() for k in listed])
    by_id = {k.id: k for k in listed}
    for key, token in made:
        shown = by_id[key.id]
        assert (shown.prefix_display, shown.last4) == (f"asdk_{key.id}_", token[-4:])
        assert shown.display == keys.display(token)
        # Nothing of the secret beyond the last four characters (which are checksum) is shown.
        assert keys.parse(token)[1][-8:] not in text and token[-8:] not in text


def test_another_orgs_key_is_not_found(service: KeyService) -> None:
    theirs, _ = create(service, OTHER)
    for call in (
        lambda: service.get(ORG, theirs.id),
        lambda: service.rotate(ORG, theirs.id),
        lambda: service.revoke(ORG, theirs.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert service.list(ORG).items == []
    assert service.get(OTHER, theirs.id).revoked_at is None


def test_a_key_authenticates_in_its_own_org(service: KeyService) -> None:
    key, token = create(
        service, OTHER, role="admin", rate_per_second=5, burst=20, ip_allowlist=["10.1.2.3"]
    )
    principal = service.authenticate(token)
    assert principal == Principal(
        subject=f"api_key:{key.id}",
        org_id=OTHER,
        scopes=frozenset(scopes.ROLES["admin"]),
        kind="api_key",
        key_id=key.id,
        rate_per_second=5.0,
        burst=20,
        ip_allowlist=("10.1.2.3/32",),
    )
    assert principal.acts_in(OTHER) and not principal.acts_in(ORG)


def test_explicit_scopes_make_a_custom_key(service: KeyService) -> None:
    key, token = create(service, role="viewer", scopes=["runs:write", "admin:platform"])
    assert key.role == "custom" and key.scopes == ["runs:write", "admin:platform"]
    assert service.authenticate(token).scopes == {"runs:write", "admin:platform"}
    same, _ = create(service, role="viewer", scopes=["sessions:read", "runs:read"])
    assert same.role == "viewer"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "root"),
        ("scopes", ["runs:read", "everything"]),
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 101),
        ("name", "line\nbreak"),
        ("name", "esc\x1b[31m"),
        ("created_by", ""),
        ("expires_at", "tomorrow"),
        ("expires_at", "2000-01-01T00:00:00Z"),
        ("rate_per_second", 0),
        ("rate_per_second", -1.5),
        ("rate_per_second", float("nan")),
        ("rate_per_second", float("inf")),
        ("rate_per_second", True),
        ("burst", 0),
        ("burst", 2.5),
        ("burst", False),
        ("ip_allowlist", ["10.0.0.0/33"]),
        ("ip_allowlist", ["not-an-ip"]),
        ("ip_allowlist", ["10.0.0.1", "2001:db8::/129"]),
        ("ip_allowlist", [""]),
    ],
)
def test_bad_input_is_invalid_input(service: KeyService, field: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        create(service, **{field: value})
    assert service.list(ORG).items == []


def test_ip_allowlists_accept_v4_and_v6_and_are_normalised(service: KeyService) -> None:
    key, _ = create(
        service, ip_allowlist=["10.0.0.7/8", "2001:DB8::1/32", "192.0.2.1", "::1", "10.0.0.0/8"]
    )
    assert key.ip_allowlist == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32", "::1/128"]
    assert service.get(ORG, key.id).ip_allowlist == key.ip_allowlist


@pytest.mark.parametrize(
    "name",
    [
        'it\'s "quoted"',
        "'; DROP TABLE api_keys; --",
        "Robert'); DELETE FROM api_keys WHERE ('1'='1",
        "ünïcödé — 日本語 — 🤖 — عربى",
        "back\\slash and %s %% ? :name $1",
        "x" * 100,
    ],
)
def test_hostile_names_round_trip(service: KeyService, name: str) -> None:
    key, token = create(service, name=name, created_by=name)
    assert service.get(ORG, key.id).name == name
    assert service.list(ORG).items[0].created_by == name
    service.authenticate(token)


def test_the_unknown_org_is_not_found(service: KeyService) -> None:
    with pytest.raises(NotFound, match="no-such-org"):
        create(service, "no-such-org")


# -- authentication ------------------------------------------------------------------------------
def test_every_refusal_is_the_same_error(service: KeyService, clock: Clock) -> None:
    key, token = create(service, expires_at=iso(clock.now + timedelta(hours=1)))
    revoked_key, revoked = create(service)
    service.revoke(ORG, revoked_key.id)
    _, wrong_secret = keys.generate(key.id)
    _, unknown = keys.generate()
    flipped = token[:-1] + ("x" if token[-1] != "x" else "y")  # never the token itself
    messages = {
        refused(service, t) for t in (wrong_secret, unknown, revoked, flipped, "", "asdk_nope")
    }
    clock.advance(3600)
    messages.add(refused(service, token))
    assert messages == {"invalid API key"}


def test_last_used_is_written_at_most_once_a_minute(
    service: KeyService, store: SQLiteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = create(service)
    touches: list[str] = []
    real_touch = store.touch_api_key

    def counting_touch(key_id: str, when: str) -> None:
        touches.append(when)
        real_touch(key_id, when)

    monkeypatch.setattr(store, "touch_api_key", counting_touch)
    for _ in range(5):
        service.authenticate(token)
        clock.advance(10)
    assert touches == [key.created_at]
    assert service.get(ORG, key.id).last_used_at == key.created_at
    clock.advance(20)  # 70s after the first use
    service.authenticate(token)
    service.authenticate(token)
    assert len(touches) == 2 and service.get(ORG, key.id).last_used_at == iso(clock.now)


def test_authentication_succeeds_when_the_touch_cannot_be_written(
    service: KeyService, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_sdk.errors import BackendUnavailable

    _, token = create(service)

    def locked(key_id: str, when: str) -> None:
        raise BackendUnavailable("database is locked")

    monkeypatch.setattr(store, "touch_api_key", locked)
    assert service.authenticate(token).kind == "api_key"


def test_a_changed_pepper_invalidates_every_key(
    settings: Settings, store: SQLiteStore, clock: Clock
) -> None:
    first = KeyService(settings.replace(api_key_pepper="a" * 32), store, clock=clock)
    _, token = create(first)
    first.authenticate(token)
    second = KeyService(settings.replace(api_key_pepper="b" * 32), store, clock=clock)
    assert refused(second, token) == "invalid API key"


# -- rotation, revocation, expiry ----------------------------------------------------------------
def test_rotation_without_grace_ends_the_old_secret_at_once(
    service: KeyService, clock: Clock
) -> None:
    key, old = create(service, rate_per_second=3, ip_allowlist=["10.0.0.0/8"])
    clock.advance(5)
    rotated, new = service.rotate(ORG, key.id)
    assert rotated.id == key.id and new != old and keys.parse(new)[0] == key.id
    assert rotated.last4 == new[-4:] and rotated.rotated_at == iso(clock.now)
    # Limits belong to the key id, so they survive rotation.
    assert (rotated.rate_per_second, rotated.ip_allowlist) == (3.0, ["10.0.0.0/8"])
    assert refused(service, old) == "invalid API key"
    assert service.authenticate(new).key_id == key.id


def test_rotation_with_grace_keeps_the_old_secret_until_it_ends(
    service: KeyService, clock: Clock
) -> None:
    key, old = create(service)
    _, new = service.rotate(ORG, key.id, grace_seconds=300)
    clock.advance(299)
    assert service.authenticate(old).key_id == key.id
    assert service.authenticate(new).key_id == key.id
    clock.advance(1)
    assert refused(service, old) == "invalid API key"
    assert service.authenticate(new).key_id == key.id


def test_a_second_rotation_ends_the_first_grace(service: KeyService, clock: Clock) -> None:
    key, first = create(service)
    _, second = service.rotate(ORG, key.id, grace_seconds=300)
    _, third = service.rotate(ORG, key.id, grace_seconds=300)
    refused(service, first)
    service.authenticate(second)
    service.authenticate(third)


def test_rotation_with_a_real_clock_and_a_short_grace(
    settings: Settings, store: SQLiteStore
) -> None:
    import time

    service = KeyService(settings, store)
    key, old = create(service)
    _, new = service.rotate(ORG, key.id, grace_seconds=0.3)
    service.authenticate(old)
    time.sleep(0.35)
    refused(service, old)
    service.authenticate(new)


@pytest.mark.parametrize("grace", [-1, float("nan"), 31 * 24 * 3600])
def test_a_bad_grace_period_is_invalid_input(service: KeyService, grace: float) -> None:
    key, _ = create(service)
    with pytest.raises(InvalidInput, match="grace"):
        service.rotate(ORG, key.id, grace_seconds=grace)


def test_revocation_is_immediate_and_final(service: KeyService, clock: Clock) -> None:
    key, old = create(service)
    _, token = service.rotate(ORG, key.id, grace_seconds=600)
    service.authenticate(token)
    revoked = service.revoke(ORG, key.id)
    assert revoked.revoked_at == iso(clock.now)
    assert refused(service, token) == refused(service, old) == "invalid API key"
    with pytest.raises(Conflict, match="revoked"):
        service.rotate(ORG, key.id)
    clock.advance(60)
    assert service.revoke(ORG, key.id).revoked_at == revoked.revoked_at  # the first time stays
    assert refused(service, token)


def test_an_expired_key_is_refused_and_cannot_be_rotated(service: KeyService, clock: Clock) -> None:
    key, token = create(service, expires_at=(clock.now + timedelta(minutes=5)).isoformat())
    assert key.expires_at == iso(clock.now + timedelta(minutes=5))
    clock.advance(299)
    service.authenticate(token)
    clock.advance(1)
    assert refused(service, token) == "invalid API key"
    with pytest.raises(Conflict, match="expired"):
        service.rotate(ORG, key.id)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2031-02-03", "2031-02-03T00:00:00.000000Z"),
        ("2031-02-03T04:05:06Z", "2031-02-03T04:05:06.000000Z"),
        ("2031-02-03T04:05:06+02:00", "2031-02-03T02:05:06.000000Z"),
        (datetime(2031, 2, 3, tzinfo=UTC), "2031-02-03T00:00:00.000000Z"),
    ],
)
def test_expiry_times_are_stored_in_utc(service: KeyService, given: Any, stored: str) -> None:
    key, _ = create(service, expires_at=given)
    assert key.expires_at == stored


# -- the bootstrap key ---------------------------------------------------------------------------
def test_the_bootstrap_key_is_an_admin_key_made_once(service: KeyService) -> None:
    token = service.ensure_bootstrap_key(ORG)
    assert token is not None
    principal = service.authenticate(token)
    # The deployment's own key: an admin that may also act in (and create) other orgs.
    assert principal.scopes == scopes.ROLES["admin"] | {scopes.ADMIN_PLATFORM}
    assert principal.org_id == ORG
    assert service.ensure_bootstrap_key(ORG) is None
    [key] = service.list(ORG).items
    assert (key.name, key.role, key.created_by) == ("bootstrap", "admin", "bootstrap")


def test_the_bootstrap_key_honours_api_key_role_and_scopes(
    isolated_env: dict[str, str], store: SQLiteStore
) -> None:
    from agent_sdk.config import load_settings

    env = {**isolated_env, "API_KEY_ROLE": "operator"}
    service = KeyService(load_settings(env=env), store)
    token = service.ensure_bootstrap_key(ORG)
    assert token and service.authenticate(token).scopes == scopes.ROLES["operator"]

    env["API_KEY_SCOPES"] = "runs:read,admin:platform"
    service = KeyService(load_settings(env=env), store)
    token = service.ensure_bootstrap_key(OTHER)
    assert token and service.authenticate(token).scopes == {"runs:read", "admin:platform"}
    assert service.list(OTHER).items[0].role == "custom"

    store.ensure_org("third")
    env["API_KEY_SCOPES"] = "runs:read,root"
    with pytest.raises(InvalidInput, match="'root'"):
        KeyService(load_settings(env=env), store).ensure_bootstrap_key("third")
    assert service.list("third").items == []


def test_an_org_whose_keys_are_all_revoked_gets_no_new_bootstrap_key(
    service: KeyService,
) -> None:
    key, _ = create(service)
    service.revoke(ORG, key.id)
    assert service.ensure_bootstrap_key(ORG) is None


def test_servers_starting_at_once_make_one_bootstrap_key(
    settings: Settings, store: SQLiteStore
) -> None:
    barrier = threading.Barrier(6)
    tokens: list[str | None] = []

    def start() -> None:
        other = SQLiteStore(store.path)
        barrier.wait()
        tokens.append(KeyService(settings, other).ensure_bootstrap_key(ORG))
        other.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([t for t in tokens if t]) == 1 and len(tokens) == 6
    assert len(store.list_api_keys(ORG).items) == 1


# -- SQLite specifics ----------------------------------------------------------------------------
def plan(store: SQLiteStore, sql: str, params: list[object]) -> list[str]:
    rows = store._conn().db.execute("EXPLAIN QUERY PLAN " + sql, params)
    return [r["detail"] for r in rows]


def test_key_queries_use_the_indexes(store: SQLiteStore) -> None:
    from agent_sdk.store.api_keys import KEY_COLUMNS

    steps = plan(
        store,
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        [ORG, "z", 51],
    )
    assert steps == ["SEARCH api_keys USING INDEX api_keys_org_id (org_id=? AND id<?)"], steps
    steps = plan(store, f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?", ["x"])
    assert steps == ["SEARCH api_keys USING INDEX sqlite_autoindex_api_keys_1 (id=?)"], steps


def test_the_service_creates_a_private_pepper_file_on_first_use(
    service: KeyService, settings: Settings
) -> None:
    assert not settings.pepper_path.exists()  # building the service reads nothing
    create(service)
    assert settings.pepper_path.exists()
    assert stat.S_IMODE(os.stat(settings.pepper_path).st_mode) == 0o600
