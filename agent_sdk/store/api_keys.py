"""The KeyStore protocol: how a store keeps API keys, and the row conversions its
implementations share.

Every method takes the org first, except :meth:`KeyStore.find_api_key_for_auth`: authentication
reads a key by the id inside the token before it knows the org, and that one cross-org read is
named for the only thing allowed to use it. :meth:`KeyStore.api_key_generation` is what lets a
process remember verified keys safely: triggers of the schema (migration 0010) move it with every
change authentication must see. Secret hashes go in through ``insert_api_key`` and
``update_api_key`` and come out only through that lookup; an :class:`ApiKey` never carries one.

Implementation: :class:`agent_sdk.store._sql_mixins.SQLKeyQueries`, for both SQL stores. Both run
``tests/contracts/key_store_contract.py`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from agent_sdk.errors import InvalidInput

if TYPE_CHECKING:
    from agent_sdk.records import ApiKey, Page

#: (key, secret hash, previous hash, previous valid until): what authentication compares.
AuthRecord: TypeAlias = tuple["ApiKey", str, str | None, str | None]


class KeyStore(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """As :meth:`Store.transaction`: rotation reads the current hash and replaces it in
        one transaction, so two rotations at once cannot lose a secret."""
        ...

    def insert_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        """Insert a new key of ``key.org_id``. Conflict if the id exists, NotFound if the org
        does not."""
        ...

    def get_api_key(self, org_id: str, key_id: str) -> ApiKey:
        """Raise NotFound (also for another org's key, with the same message)."""
        ...

    def list_api_keys(
        self, org_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ApiKey]:
        """Newest first (ids sort by creation time), keyset-paginated; revoked keys included."""
        ...

    def update_api_key(self, org_id: str, key_id: str, /, **fields: Any) -> ApiKey:
        """Set ``fields`` (any of :data:`UPDATABLE`, hashes included) and return the key.
        InvalidInput for another field, NotFound for an unknown key or another org's."""
        ...

    def find_api_key_for_auth(self, key_id: str) -> AuthRecord | None:
        """The key with ``key_id`` in any org, with its hashes; None if there is none. For
        authentication only: one primary-key read, no write."""
        ...

    def touch_api_key(self, key_id: str, when: str) -> None:
        """Set ``last_used_at`` to ``when`` unless it is already as late (a single cheap
        UPDATE; concurrent touches never move it backwards)."""
        ...

    def api_key_generation(self) -> int | None:
        """A number that changes, in the same transaction, with every change to any key that
        authentication must see (its hashes, scopes, limits, allowlist, expiry, revocation, its
        deletion); ``last_used_at`` and the name do not move it. One read of one row: the
        check that lets a process trust a key it verified before (see
        :class:`agent_sdk.core.api_keys.KeyService`)."""
        ...


# -- shared by the implementations ----------------------------------------------------------

#: The columns of an ApiKey, in its field order (a row of them converts with key_from_row).
KEY_FIELDS: tuple[str, ...] = (
    "id",
    "org_id",
    "name",
    "prefix_display",
    "last4",
    "role",
    "scopes",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "rotated_at",
    "last_used_at",
    "rate_per_second",
    "burst",
    "ip_allowlist",
)
KEY_COLUMNS = ", ".join(KEY_FIELDS)
_JSON_FIELDS = frozenset({"scopes", "ip_allowlist"})
_HASH_FIELDS = frozenset({"secret_hash", "previous_hash", "previous_valid_until"})

#: What update_api_key may change. The id, org, display prefix and creation facts are fixed.
UPDATABLE: frozenset[str] = (
    frozenset(KEY_FIELDS) - {"id", "org_id", "prefix_display", "created_at", "created_by"}
) | _HASH_FIELDS


def key_from_row(r: Sequence[Any]) -> ApiKey:
    values = dict(zip(KEY_FIELDS, r, strict=True))
    values["scopes"] = _list(values["scopes"])
    values["ip_allowlist"] = _list(values["ip_allowlist"])
    from agent_sdk.records import ApiKey

    return ApiKey(**values)


def _list(text: str) -> list[str]:
    # Authentication converts a row per request, and most allowlists are empty.
    return [] if text == "[]" else list(json.loads(text))


def key_values(key: ApiKey, secret_hash: str) -> dict[str, Any]:
    """The column values of a new key, by column name."""
    values = {name: key_column_value(name, getattr(key, name)) for name in KEY_FIELDS}
    values["secret_hash"] = secret_hash
    return values


def key_column_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return json.dumps(list(value or []), separators=(",", ":"))
    return value


def check_updatable(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - UPDATABLE)
    if unknown:
        raise InvalidInput(
            f"cannot update API key field(s) {', '.join(unknown)}",
            hint="updatable: " + ", ".join(sorted(UPDATABLE)),
        )


__all__ = [
    "KEY_COLUMNS",
    "KEY_FIELDS",
    "UPDATABLE",
    "AuthRecord",
    "KeyStore",
    "check_updatable",
    "key_column_value",
    "key_from_row",
    "key_values",
]
