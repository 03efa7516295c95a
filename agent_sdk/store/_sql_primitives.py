"""The four primitives every SQL store provides, and the shared SQL is written against.

Statements use ``?`` placeholders (the Postgres store turns them into ``%s``); a store
translates its driver's errors into the tree of :mod:`agent_sdk.errors` in these four, so the
shared SQL never sees a driver error.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any


class SQLPrimitives:
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a query; its rows (sequences, in column order)."""
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; nested calls join the outer one and only it commits."""
        raise NotImplementedError


__all__ = ["SQLPrimitives"]
