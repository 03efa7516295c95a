"""The two ends of ``agent-sdk db copy``: a SQLite file or a Postgres schema, read and written in
bulk through a connection of the copy's own.

Why not through the Store: a copy needs things no tenant-scoped Store call should offer (read a
whole table in key order inside one snapshot, write a whole database in one transaction, COPY on
Postgres), and it must not share a pooled connection with anything else while it holds that
transaction. The destination's Store still creates and migrates it (see
:mod:`agent_sdk.store.copy`); these classes read schemas and move rows. The source is only ever
opened read-only (``mode=ro`` for SQLite, a READ ONLY transaction on Postgres).

Every driver error leaves here as one of the agent_sdk errors, naming the database (password
masked) and what was being done. Table and column names come from the migrations, never from
the user, and are quoted anyway.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict, InvalidInput
from agent_sdk.private_files import ensure_private_file

if TYPE_CHECKING:
    import psycopg

Row = tuple[Any, ...]
Batch = list[Row]

LOCK_TIMEOUT = "10s"  # how long a Postgres destination may be held by someone else's lock
_BYTEWISE = '"C"'  # the Postgres collation that orders text by its bytes, like SQLite's BINARY


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table to copy: its columns in a fixed order, and the key the rows are read in.

    ``text_key`` names the key columns holding text. They are ordered bytewise on both engines
    (SQLite's BINARY, Postgres's "C"), so the two sides list rows in the same order and their
    checksums can be compared.
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    text_key: frozenset[str]

    def key_of(self, row: Row) -> dict[str, Any]:
        return {c: row[self.columns.index(c)] for c in self.key}


def q(name: str) -> str:
    """A quoted identifier; both engines accept the SQL standard's double quotes."""
    return '"' + name.replace('"', '""') + '"'


class Side:
    """What the copy needs from one database. A read side runs in one snapshot; a write side
    in one transaction that the caller commits only after the checksums match."""

    label: str

    def tables(self) -> dict[str, set[str]]:
        """Each existing table (of this schema) and its column names."""
        raise NotImplementedError

    def identity(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def applied_migrations(self) -> list[int]:
        """The versions in ``schema_migrations`` (none when the table does not exist)."""
        raise NotImplementedError

    def heartbeats(self) -> list[tuple[str, str]]:
        """``(name, heartbeat_at)`` of every row of ``workers`` (none without the table)."""
        raise NotImplementedError

    def begin(self, *, write: bool) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def count(self, table: str) -> int:
        raise NotImplementedError

    def has_key(self, spec: TableSpec, key: Row) -> bool:
        raise NotImplementedError

    def stream(self, spec: TableSpec, batch: int) -> Iterator[Batch]:
        """Every row, in key order, ``batch`` rows at a time."""
        raise NotImplementedError

    def delete_key(self, spec: TableSpec, key: Row) -> None:
        raise NotImplementedError

    def clear(self, specs: Sequence[TableSpec]) -> None:
        """Delete every row of ``specs`` (given in dependency order)."""
        raise NotImplementedError

    def lock(self, specs: Sequence[TableSpec]) -> None:
        """Keep other writers out of ``specs`` until the transaction ends."""
        raise NotImplementedError

    def insert(self, spec: TableSpec, batches: Iterable[Batch]) -> int:
        raise NotImplementedError

    def reset_sequences(self, specs: Sequence[TableSpec]) -> list[str]:
        """Move every counter owned by a column of ``specs`` past the copied rows."""
        raise NotImplementedError

    # shared helpers ----------------------------------------------------------------------------
    def _order_by(self, spec: TableSpec, collation: str) -> str:
        return ", ".join(
            f"{q(c)} COLLATE {collation}" if c in spec.text_key else q(c) for c in spec.key
        )

    def _key_where(self, spec: TableSpec, mark: str) -> str:
        return " AND ".join(f"{q(c)} = {mark}" for c in spec.key)


# -- SQLite ---------------------------------------------------------------------------------------


class SQLiteSide(Side):
    """A SQLite file: read-only (``mode=ro``) as a source, so the copy cannot write to it."""

    def __init__(self, path: Path, *, write: bool, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.label = f"SQLite database {path}"
        try:
            if write:
                ensure_private_file(path)  # a new destination is 0600, like every database file
                self.db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
                self.db.execute("PRAGMA foreign_keys=ON")
            else:
                uri = f"file:{quote(str(path.resolve()))}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from exc

    def _error(self, exc: sqlite3.Error, doing: str) -> AgentSDKError:
        text = str(exc)
        low = text.lower()
        where = f"{self.label}: {doing}"
        if isinstance(exc, sqlite3.IntegrityError):
            return Conflict(f"{where}: rejected by a constraint ({text})")
        if "locked" in low or "busy" in low:
            return BackendUnavailable(
                f"{where}: the database is locked by another connection",
                hint="stop the processes using it (agent-sdk up, serve, workers) and retry",
            )
        if "not a database" in low or "malformed" in low or "decode" in low:
            return InvalidInput(f"{where}: {text}")
        return BackendUnavailable(f"{where}: {text}", hint="check the file and its directory")

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from exc

    def tables(self) -> dict[str, set[str]]:
        with self._errors("reading the schema"):
            rows = self.db.execute(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p"
                " WHERE m.type = 'table'"
            ).fetchall()
        out: dict[str, set[str]] = {}
        for table, column in rows:
            out.setdefault(table, set()).add(column)
        return out

    def identity(self) -> tuple[Any, ...]:
        st = os.stat(self.path)
        return ("sqlite", st.st_dev, st.st_ino)

    def applied_migrations(self) -> list[int]:
        if "schema_migrations" not in self.tables():
            return []
        with self._errors("reading schema_migrations"):
            return [r[0] for r in self.db.execute("SELECT version FROM schema_migrations")]

    def heartbeats(self) -> list[tuple[str, str]]:
        if "workers" not in self.tables():
            return []
        with self._errors("reading workers"):
            return [(r[0], r[1]) for r in self.db.execute("SELECT name, heartbeat_at FROM workers")]

    def begin(self, *, write: bool) -> None:
        # A reader's snapshot starts at its first read and lasts until the end: every table is
        # read as of one moment even while the source keeps serving writers (WAL).
        with self._errors("starting a transaction"):
            self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        with self._errors("committing"):
            self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.rollback()
        self.db.close()

    def count(self, table: str) -> int:
        with self._errors(f"counting the rows of {table}"):
            n: int = self.db.execute(f"SELECT COUNT(*) FROM {q(table)}").fetchone()[0]
        return n

    def has_key(self, spec: TableSpec, key: Row) -> bool:
        sql = f"SELECT 1 FROM {q(spec.name)} WHERE {self._key_where(spec, '?')}"
        with self._errors(f"reading {spec.name}"):
            return self.db.execute(sql, key).fetchone() is not None

    def stream(self, spec: TableSpec, batch: int) -> Iterator[Batch]:
        sql = (
            f"SELECT {', '.join(map(q, spec.columns))} FROM {q(spec.name)}"
            f" ORDER BY {self._order_by(spec, 'BINARY')}"
        )
        with self._errors(f"reading {spec.name}"):
            cur = self.db.execute(sql)  # SQLite steps lazily: one batch in memory at a time
            while rows := cur.fetchmany(batch):
                yield rows
            cur.close()

    def delete_key(self, spec: TableSpec, key: Row) -> None:
        with self._errors(f"deleting from {spec.name}"):
            self.db.execute(f"DELETE FROM {q(spec.name)} WHERE {self._key_where(spec, '?')}", key)

    def clear(self, specs: Sequence[TableSpec]) -> None:
        for spec in reversed(specs):  # children first, so no foreign key is left dangling
            with self._errors(f"emptying {spec.name}"):
                self.db.execute(f"DELETE FROM {q(spec.name)}")

    def lock(self, specs: Sequence[TableSpec]) -> None:
        """BEGIN IMMEDIATE already holds the database's one write lock."""

    def insert(self, spec: TableSpec, batches: Iterable[Batch]) -> int:
        marks = ", ".join("?" * len(spec.columns))
        sql = f"INSERT INTO {q(spec.name)} ({', '.join(map(q, spec.columns))}) VALUES ({marks})"
        n = 0
        for rows in batches:
            with self._errors(f"copying into {spec.name}"):
                self.db.executemany(sql, rows)
            n += len(rows)
        return n

    def reset_sequences(self, specs: Sequence[TableSpec]) -> list[str]:
        """Nothing to do: an AUTOINCREMENT counter follows the largest rowid ever inserted,
        explicit ones included, and every other counter of the schema is a MAX(...) + 1."""
        return []


# -- Postgres -------------------------------------------------------------------------------------


class PostgresSide(Side):
    """A Postgres schema (the ``search_path`` of the URL): a REPEATABLE READ, READ ONLY
    transaction as a source; COPY ... FROM STDIN as a destination."""

    def __init__(self, url: str, label: str, *, write: bool, connect_timeout: float = 10.0) -> None:
        import psycopg

        self.label = label
        self._n = 0
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            self.conn: psycopg.Connection[Any] = psycopg.connect(
                conninfo, autocommit=False, connect_timeout=max(1, int(connect_timeout))
            )
        except psycopg.Error as exc:
            raise self._error(exc, "connecting") from None
        if not write:
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.conn.read_only = True

    def _error(self, exc: Exception, doing: str) -> AgentSDKError:
        from agent_sdk.store.postgres_mixins import translate

        err = translate(exc, self.label)
        text = err.message.removeprefix(f"{self.label}: ")
        context = getattr(getattr(exc, "diag", None), "context", None)
        if context and context.splitlines()[0] not in text:
            text += f" ({context.splitlines()[0]})"  # e.g. "COPY runs, line 3, column input"
        return type(err)(f"{self.label}: {doing}: {text}", hint=err.hint)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        import psycopg

        try:
            yield
        except (psycopg.Error, OverflowError, UnicodeEncodeError) as exc:
            raise self._error(exc, doing) from exc

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql.encode(), params).fetchall()

    def tables(self) -> dict[str, set[str]]:
        with self._errors("reading the schema"):
            rows = self._all(
                "SELECT c.table_name, c.column_name FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            )
            self.conn.rollback()  # end the implicit transaction: begin() starts the real one
        out: dict[str, set[str]] = {}
        for table, column in rows:
            out.setdefault(table, set()).add(column)
        return out

    def identity(self) -> tuple[Any, ...]:
        # The server (its start time), the database (its oid) and the schema: two URLs that
        # differ only in spelling (localhost, 127.0.0.1, a socket) still name one schema.
        with self._errors("identifying the database"):
            row = self._all(
                "SELECT pg_postmaster_start_time()::text,"
                " (SELECT oid FROM pg_database WHERE datname = current_database()),"
                " current_schema()"
            )[0]
            self.conn.rollback()
        return ("postgresql", *row)

    def applied_migrations(self) -> list[int]:
        if "schema_migrations" not in self.tables():
            return []
        with self._errors("reading schema_migrations"):
            versions = [r[0] for r in self._all("SELECT version FROM schema_migrations")]
            self.conn.rollback()
        return versions

    def heartbeats(self) -> list[tuple[str, str]]:
        if "workers" not in self.tables():
            return []
        with self._errors("reading workers"):
            rows = self._all("SELECT name, heartbeat_at FROM workers")
            self.conn.rollback()  # the snapshot of the copy starts in begin(), not here
        return [(r[0], r[1]) for r in rows]

    def begin(self, *, write: bool) -> None:
        """psycopg opens the transaction with the first statement (REPEATABLE READ for a reader,
        so all its statements share one snapshot)."""
        if write:
            with self._errors("starting a transaction"):
                self.conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'".encode())

    def commit(self) -> None:
        with self._errors("committing"):
            self.conn.commit()

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()

    def close(self) -> None:
        self.rollback()
        self.conn.close()

    def count(self, table: str) -> int:
        with self._errors(f"counting the rows of {table}"):
            n: int = self._all(f"SELECT COUNT(*) FROM {q(table)}")[0][0]
        return n

    def has_key(self, spec: TableSpec, key: Row) -> bool:
        sql = f"SELECT 1 FROM {q(spec.name)} WHERE {self._key_where(spec, '%s')}"
        with self._errors(f"reading {spec.name}"):
            return bool(self._all(sql, key))

    def stream(self, spec: TableSpec, batch: int) -> Iterator[Batch]:
        sql = (
            f"SELECT {', '.join(map(q, spec.columns))} FROM {q(spec.name)}"
            f" ORDER BY {self._order_by(spec, _BYTEWISE)}"
        )
        self._n += 1
        # A server-side cursor: the server holds the result, the client one batch of it.
        with self._errors(f"reading {spec.name}"):
            with self.conn.cursor(name=f"agent_sdk_copy_{self._n}") as cur:
                cur.itersize = batch
                cur.execute(sql.encode())
                while rows := cur.fetchmany(batch):
                    yield rows

    def delete_key(self, spec: TableSpec, key: Row) -> None:
        sql = f"DELETE FROM {q(spec.name)} WHERE {self._key_where(spec, '%s')}"
        with self._errors(f"deleting from {spec.name}"):
            self.conn.execute(sql.encode(), key)

    def clear(self, specs: Sequence[TableSpec]) -> None:
        # One TRUNCATE of every table: transactional in Postgres, and foreign keys between the
        # listed tables need no order. A table outside the list that points into it fails it.
        with self._errors("emptying the tables"):
            self.conn.execute(f"TRUNCATE {', '.join(q(s.name) for s in specs)}".encode())

    def lock(self, specs: Sequence[TableSpec]) -> None:
        # EXCLUSIVE lets readers in but no writer, so the emptiness check and the copy see the
        # same tables; lock_timeout turns a live server's lock into a clear error.
        with self._errors("locking the tables (is a server or worker using them?)"):
            self.conn.execute(
                f"LOCK TABLE {', '.join(q(s.name) for s in specs)} IN EXCLUSIVE MODE".encode()
            )

    def insert(self, spec: TableSpec, batches: Iterable[Batch]) -> int:
        import psycopg

        sql = f"COPY {q(spec.name)} ({', '.join(map(q, spec.columns))}) FROM STDIN"
        n = 0
        with self._errors(f"copying into {spec.name}"):
            with self.conn.cursor() as cur, cur.copy(sql.encode()) as copy:
                for rows in batches:
                    for row in rows:
                        try:
                            copy.write_row(row)
                        except (psycopg.DataError, UnicodeEncodeError, OverflowError) as exc:
                            # Raised before the row leaves: name it (a NUL in a text field,
                            # which Postgres cannot store, is the usual one).
                            raise Conflict(
                                f"{self.label}: cannot store row {spec.key_of(row)} of table"
                                f" {spec.name}: {exc}",
                                hint="fix or remove that row in the source, then copy again",
                            ) from exc
                    n += len(rows)
        return n

    def reset_sequences(self, specs: Sequence[TableSpec]) -> list[str]:
        """The schema has none today (every seq is a MAX(...) + 1 of copied rows), but a serial
        or identity column added later must not hand out a value the copy already used."""
        done: list[str] = []
        with self._errors("resetting sequences"):
            for spec in specs:
                owned = self._all(
                    "SELECT a.attname, pg_get_serial_sequence("
                    "   quote_ident(current_schema()) || '.' || quote_ident(%s), a.attname)"
                    " FROM pg_attribute a"
                    " WHERE a.attrelid = to_regclass(quote_ident(current_schema()) || '.' ||"
                    "   quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped",
                    (spec.name, spec.name),
                )
                for column, sequence in owned:
                    if sequence is None:
                        continue
                    (value,) = self._all(
                        f"SELECT setval(%s, COALESCE(MAX({q(column)}), 0) + 1, false)"
                        f" FROM {q(spec.name)}",
                        (sequence,),
                    )[0]
                    done.append(f"{spec.name}.{column}: next {value}")
        return done


__all__ = ["Batch", "PostgresSide", "Row", "SQLiteSide", "Side", "TableSpec", "q"]
