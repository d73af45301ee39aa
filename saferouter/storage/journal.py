"""Writes to in-memory tables that can be undone: the memory store's transactions.

SQLite rolls a failed operation back to its savepoint, so a write that fails halfway
(a duplicate ledger entry after the rate window was already counted) leaves nothing
behind. :class:`Journal` gives plain dicts and lists the same property: every change
goes through it inside :meth:`Journal.transaction`, which undoes the transaction's
changes, newest first, when any exception leaves it. A change outside a transaction is
refused, so no write can skip the journal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Journal:
    """Records how to undo each change of the transaction in progress."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply the changes made inside, or none of them when an exception leaves."""
        if self._undo is not None:
            raise RuntimeError("transactions do not nest")
        undo: list[Callable[[], object]] = []
        self._undo = undo
        try:
            yield
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        finally:
            self._undo = None

    def _record(self, step: Callable[[], object]) -> None:
        if self._undo is None:
            raise RuntimeError("a write outside a transaction could not be undone")
        self._undo.append(step)

    def set(self, table: dict[K, V], key: K, value: V) -> None:
        """``table[key] = value``."""
        if key in table:
            old = table[key]
            self._record(lambda: table.__setitem__(key, old))
        else:
            self._record(lambda: table.pop(key))
        table[key] = value

    def delete(self, table: dict[K, V], key: K) -> None:
        """``del table[key]``."""
        old = table[key]
        self._record(lambda: table.__setitem__(key, old))
        del table[key]

    def append(self, table: list[V], value: V) -> None:
        """``table.append(value)``."""
        self._record(table.pop)
        table.append(value)
