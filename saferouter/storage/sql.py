"""The connection the shared SQL modules write to: :class:`Db`, one protocol for SQLite
and PostgreSQL.

The SQL of the books, logs, receipts and keys (:mod:`.ledger`, :mod:`.logs`, …) is
written once, in the portable subset both databases run unchanged: ``?`` placeholders,
booleans bound as Python bools or written TRUE/FALSE, ``CAST(SUM(x) AS BIGINT)`` where a
sum is read as an int, ``ON CONFLICT`` upserts. A :class:`sqlite3.Connection` made by
:func:`~.sqlite.connect` satisfies :class:`Db` as it is (a :class:`~.sqlite.SQLiteDb`,
which only names its dialect); a psycopg connection is wrapped in :class:`PostgresDb`, which turns
``?`` into psycopg's ``%s`` and reads rows by name *and* by position, as
:class:`sqlite3.Row` does, so no module can tell which database it writes to. Where a
statement truly must differ, ``db.dialect`` says which it is (one place: a ledger
entry and its balance move, one statement on PostgreSQL, :func:`.ledger._entry`).
(This module imports neither driver: the memory store's imports stay free of both.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import psycopg

Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """What a statement returns: rows (by name and by position) and how many it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection inside a write transaction (or a read connection)."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Row(tuple[Any, ...]):
    """A PostgreSQL row read as :class:`sqlite3.Row` reads: ``row["name"]``, ``row[0]``,
    ``tuple(row)``, ``row.keys()``. One subclass per column list (:func:`_row_type`)
    holds the names, so a row is a bare tuple."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _rows(cursor: psycopg.Cursor[Any]) -> Any:
    """psycopg's row factory making :class:`Row` s."""
    return _row_type(tuple(column.name for column in cursor.description or ()))


def configure(connection: psycopg.Connection[Any]) -> None:
    """Make a new psycopg connection's rows :class:`Row` s (the pool's ``configure``)."""
    connection.row_factory = _rows


@functools.lru_cache(maxsize=1024)
def placeholders(sql: str) -> str:
    """``sql`` with psycopg's placeholders: ``?`` → ``%s`` outside string literals, and a
    literal ``%`` doubled (psycopg reads ``%`` as the start of a placeholder). Statements
    are constants or built from constants, so the cache holds each once."""
    # Splitting at single quotes alternates outside / inside a literal; an escaped quote
    # ('it''s') only adds an empty outside piece between two inside ones.
    pieces = sql.replace("%", "%%").split("'")
    return "'".join(
        piece.replace("?", "%s") if index % 2 == 0 else piece for index, piece in enumerate(pieces)
    )


class PostgresDb:
    """:class:`Db` on a psycopg connection made by :func:`configure`."""

    dialect: ClassVar[Dialect] = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement; its cursor."""
        cursor: Cursor = self.connection.execute(placeholders(sql), parameters)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement once for each parameter list."""
        cursor = self.connection.cursor()
        cursor.executemany(placeholders(sql), parameters)
        result: Cursor = cursor
        return result
