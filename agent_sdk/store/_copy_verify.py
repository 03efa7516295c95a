"""Verifying ``agent-sdk db copy`` (:mod:`agent_sdk.store.copy`): the digest each side's rows
are hashed into, so a table is known to have arrived whole and unchanged, and the report of
what was copied and whether it matched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from agent_sdk.errors import InvalidInput
from agent_sdk.store._copy_io import Batch, TableSpec

# -- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's outcome: rows read from the source and found in the destination, and the
    SHA-256 of each side's rows."""

    table: str
    source_rows: int
    destination_rows: int
    source_sha256: str
    destination_sha256: str
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.source_rows == self.destination_rows
            and self.source_sha256 == self.destination_sha256
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source_rows": self.source_rows,
            "destination_rows": self.destination_rows,
            "source_sha256": self.source_sha256,
            "destination_sha256": self.destination_sha256,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class CopyReport:
    source: str  # URLs with any password masked
    destination: str
    tables: list[TableCopy] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    replaced: bool = False
    committed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.committed and all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    def mismatches(self) -> list[TableCopy]:
        return [t for t in self.tables if not t.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "ok": self.ok,
            "committed": self.committed,
            "replaced": self.replaced,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "tables": [t.to_dict() for t in self.tables],
            "skipped": self.skipped,
            "sequences": self.sequences,
        }


# -- checksums ------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    raise TypeError(f"a value of type {type(value).__name__}")


# The rows of a table as one compact JSON array: the same Python values give the same bytes on
# both engines (text as UTF-8, integers in decimal, floats by their shortest repr, bytes as hex).
# A batch is encoded as one array (one call into the C encoder, not one per row) and hashed
# without its brackets, with a comma between batches, so the digest is that of the whole array
# and does not depend on where the batches were cut.
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_json_value
).encode


class Digest:
    """The SHA-256 of one table's rows, fed batch by batch in key order."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows = 0
        self._h = hashlib.sha256(f"{spec.name}\n{','.join(spec.columns)}\n[".encode())

    def add(self, rows: Batch) -> None:
        if not rows:
            return
        try:
            text = _encode(rows)
        except TypeError as exc:
            raise InvalidInput(
                f"table {self.spec.name} holds {exc.args[0] if exc.args else 'a value'},"
                " which copy cannot compare between engines"
            ) from None
        inner = text[1:-1] if self.rows == 0 else "," + text[1:-1]
        self._h.update(inner.encode("utf-8", "surrogatepass"))
        self.rows += len(rows)

    def hexdigest(self) -> str:
        final = self._h.copy()
        final.update(b"]")
        return final.hexdigest()


__all__ = ["CopyReport", "Digest", "TableCopy"]
