"""The base of every record: a frozen dataclass that turns into a JSON-ready dict and back, and
the page a listing returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


class Record:
    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: records hold no nested records, and dataclasses.asdict deep-copies
        # every dict and list, which made it the largest cost of inserting a run.
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is opaque and ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None = None


__all__ = ["Page", "Record"]
