"""Several `saferouter serve` replicas on one database, as an operator runs them: each a
process of its own with its own data dir (identity, TLS, lock), all given the same
``--database`` URL — a PostgreSQL database, or one SQLite file two local servers share.

The tests read the shared database with their own SQL (:class:`SharedDb`), not through
the gateway's store: the books are checked by an oracle that shares no code with what
wrote them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from saferouter.config import load_settings
from saferouter.storage.opening import open_store

from ..processes import Served, cli, serving
from .load import chat_body

UPSTREAM_KEY = "sk-upstream-secret-replicas"


@attrs.frozen
class CreatedKey:
    id: str
    secret: str


def create_key(database_url: str, data_dir: Path, name: str, *options: str) -> CreatedKey:
    """`saferouter keys create` against the shared database (run from any data dir)."""
    result = cli(data_dir, "keys", "create", "--database", database_url, "--name", name, *options)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    # "created user key <id> (<name>)", then the secret on the last line
    return CreatedKey(id=lines[0].split()[3], secret=lines[-1])


def replica(
    tmp_path: Path,
    number: int,
    database_url: str,
    catalog: Path | None = None,
    *,
    env: dict[str, str] | None = None,
) -> AbstractContextManager[Served]:
    """Replica ``number``: `saferouter serve` on ``database_url`` with its own data dir
    ``tmp_path/replica<number>`` (the same again on a restart) and ``catalog`` (default:
    the shipped one)."""
    config = ("--config", str(catalog)) if catalog is not None else ()
    return serving(
        tmp_path / f"replica{number}",
        "--database",
        database_url,
        *config,
        env={"FAKE_API_KEY": UPSTREAM_KEY, **(env or {})},
    )


@contextmanager
def replicas(
    tmp_path: Path,
    database_url: str,
    catalog: Path | None = None,
    *,
    count: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[list[Served]]:
    """``count`` :func:`replica` s, started one after another (each is ready before the
    next starts); SIGTERM at the end."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(replica(tmp_path, i, database_url, catalog, env=env))
            for i in range(count)
        ]


async def check_books(database_url: str, data_dir: Path) -> list[str]:
    """The store's own ``check_books`` on the shared database, opened from this process."""
    settings = load_settings({}, data_dir=data_dir, database=database_url)
    store = open_store(settings)
    try:
        return await store.check_books()
    finally:
        await store.close()


@attrs.define
class SharedDb:
    """Plain SQL on the replicas' database: sqlite3 for ``sqlite:///path``, psycopg for
    PostgreSQL; ``?`` placeholders either way."""

    url: str
    _connection: Any = None

    def __enter__(self) -> SharedDb:
        if self.url.startswith("sqlite://"):
            self._connection = sqlite3.connect(self.url.removeprefix("sqlite://"))
        else:
            import psycopg

            self._connection = psycopg.connect(self.url, autocommit=True)
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not isinstance(self._connection, sqlite3.Connection):
            sql = sql.replace("?", "%s")
        return [tuple(row) for row in self._connection.execute(sql, params).fetchall()]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        (row,) = self.rows(sql, params)
        return row[0]

    def open_reservations(self) -> set[str]:
        """Request ids with a reserve entry and no release: what is held right now."""
        return {
            r
            for (r,) in self.rows(
                "SELECT request_id FROM ledger r WHERE kind = 'reserve' AND NOT EXISTS "
                "(SELECT 1 FROM ledger x WHERE x.request_id = r.request_id "
                "AND x.kind = 'release')"
            )
        }

    def entries(self, request_id: str) -> list[str]:
        """The kinds of the request's ledger entries, sorted."""
        return sorted(
            k for (k,) in self.rows("SELECT kind FROM ledger WHERE request_id = ?", (request_id,))
        )

    def unbalanced_keys(self) -> list[tuple[Any, ...]]:
        """Metered keys whose balance is not their ledger's sum, or that are below zero,
        or that still hold a reservation: none, when the books balance."""
        rows = self.rows(
            "SELECT k.id, k.balance_micro_usd, k.reserved_micro_usd, "
            "CAST((SELECT SUM(amount_micro_usd) FROM ledger l WHERE l.key_id = k.id "
            "AND l.kind <> 'overrun') AS BIGINT) "
            "FROM keys k WHERE k.metered"
        )
        return [r for r in rows if r[1] != r[3] or r[1] < 0 or r[2] != 0]


class Held:
    """A stream held open at the fake upstream (``gate:<name>``) until the test lets it end."""

    def __init__(self, served: Served, key: CreatedKey, gate: str) -> None:
        self.served, self.key, self.gate = served, key, gate
        self.request_id = ""
        self.payload: bytes | None = None  # once it ended; None while open

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        body = chat_body(f"fake/gate:{self.gate}", stream=True)
        headers = {"Authorization": f"Bearer {self.key.secret}"}
        async with httpx.AsyncClient(base_url=self.served.url, timeout=None) as client:
            try:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=headers
                ) as response:
                    self.request_id = response.headers["x-saferouter-request-id"]
                    chunks = response.aiter_bytes()
                    first = await chunks.__anext__()  # admitted, reserved, relaying
                    task_status.started()
                    self.payload = first + b"".join([chunk async for chunk in chunks])
            except httpx.TransportError:
                self.payload = b""  # its replica died under it


async def wait_until(condition: Callable[[], bool], within_s: float = 120) -> None:
    """Poll ``condition`` until it holds (TooSlowError after ``within_s``)."""
    with trio.fail_after(within_s):
        while not condition():
            await trio.sleep(0.05)
