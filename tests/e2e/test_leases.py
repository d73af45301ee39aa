"""Two ``saferouter serve`` processes on one database (each with its own data dir, as
replicas are), one SIGKILLed with a request in flight while the other serves one of
its own: the dead one's reservation is released — by the other's heartbeat once its
lease lapses, or at once by its own restart — and the live one's never is."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from saferouter.storage.sqlite import SQLiteStore

from ..processes import Served, cli, new_key, serving
from ..servers import fake_upstream, write_catalog

RECEIPT = "x-saferouter-receipt"
REQUEST_ID = "x-saferouter-request-id"
WAIT_S = 60  # a bound for a stuck server, far above any loaded machine's pace


@asynccontextmanager
async def open_stream(url: str, key: str, model: str) -> AsyncIterator[tuple[httpx.Response, Any]]:
    """A stream whose first chunk has arrived: the response and the rest of its bytes."""
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": model,
                "stream": True,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status_code == 200
            chunks = response.aiter_raw()
            await chunks.__anext__()
            yield response, chunks


def rows(database: Path, query: str) -> list[Any]:
    """The rows of ``query``, read by a connection of the test's own."""
    db = sqlite3.connect(database)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def holders(database: Path) -> dict[str, str]:
    """The open reservations' owners, by request id."""
    return dict(rows(database, "SELECT request_id, owner FROM reservations"))


def leases(database: Path) -> list[str]:
    """The owners holding a lease."""
    return [owner for (owner,) in rows(database, "SELECT owner FROM leases")]


def replica(data_dir: Path) -> str:
    return (data_dir / "replica-id").read_text().strip()


async def receipt_status(served: Served, key: str, receipt_id: str) -> int:
    async with httpx.AsyncClient(base_url=served.url, timeout=WAIT_S) as client:
        answer = await client.get(
            f"/v1/receipts/{receipt_id}", headers={"Authorization": f"Bearer {key}"}
        )
    return answer.status_code


async def wait_for(condition: Any) -> None:
    with trio.fail_after(WAIT_S):
        while not condition():
            await trio.sleep(0.05)


async def check_books(database: Path) -> list[str]:
    store = SQLiteStore(database)
    try:
        return await store.check_books()
    finally:
        await store.close()


def charges(database: Path) -> list[str]:
    """The request ids charged, once each time."""
    return [r for (r,) in rows(database, "SELECT request_id FROM ledger WHERE kind = 'charge'")]


def replicas_of(
    database: Path, tmp_path: Path, upstream_url: str, *, lease_s: int
) -> tuple[tuple[str, ...], dict[str, str], str]:
    """What replicas on ``database`` are served with (options, environment), and a
    key with credits in it."""
    shared = ("--database", f"sqlite:///{database}")
    options = ("--config", str(write_catalog(tmp_path / "c.toml", upstream_url)), *shared)
    key = new_key(tmp_path / "keys", "--name", "u", "--credits", "5", *shared)
    return options, {"FAKE_API_KEY": "k", "SAFEROUTER_LEASE_SECONDS": str(lease_s)}, key


async def test_a_dead_replicas_reservation_is_released_by_the_live_ones_heartbeat(
    tmp_path: Path,
) -> None:
    database, first, second = tmp_path / "shared.db", tmp_path / "first", tmp_path / "second"
    async with fake_upstream() as upstream:
        options, env, key = replicas_of(database, tmp_path, upstream.url, lease_s=2)
        with serving(first, *options, env=env) as dying, serving(second, *options, env=env) as live:
            async with (
                open_stream(dying.url, key, "fake/stall:1") as (lost, _),
                open_stream(live.url, key, "fake/gate:live") as (kept, rest),
            ):
                lost_id, kept_id = lost.headers[REQUEST_ID], kept.headers[REQUEST_ID]
                owners = holders(database)
                assert owners[lost_id].startswith(replica(first) + "/")
                assert owners[kept_id].startswith(replica(second) + "/")
                os.kill(dying.process.pid, signal.SIGKILL)
                await wait_for(lambda: lost_id not in holders(database))
                # the live one's request, still in flight, holds its reservation
                assert holders(database) == {kept_id: owners[kept_id]}
                assert await receipt_status(live, key, lost.headers[RECEIPT]) == 410  # lost
                assert await receipt_status(live, key, kept.headers[RECEIPT]) == 409  # pending
                upstream.gate("live").set()
                body = b"".join([chunk async for chunk in rest])
            assert body.endswith(b"data: [DONE]\n\n")
            assert await receipt_status(live, key, kept.headers[RECEIPT]) == 200
    assert "released 1 reservations of processes whose lease lapsed" in live.output
    assert holders(database) == {}
    assert leases(database) == []  # the dead one's swept, the live one's ended at its stop
    assert charges(database) == [kept_id]  # settled normally; the lost one charged nothing
    assert await check_books(database) == []


async def test_a_restart_releases_its_own_previous_run_at_once_and_no_one_elses(
    tmp_path: Path,
) -> None:
    """Leases far longer than the test: only the restart's own replica id can release
    the killed run's reservation, and the other replica's lease protects its own."""
    database, first, second = tmp_path / "shared.db", tmp_path / "first", tmp_path / "second"
    async with fake_upstream() as upstream:
        options, env, key = replicas_of(database, tmp_path, upstream.url, lease_s=600)
        with serving(second, *options, env=env) as live:
            async with open_stream(live.url, key, "fake/gate:live") as (kept, rest):
                kept_id = kept.headers[REQUEST_ID]
                with serving(first, *options, env=env) as killed:
                    async with open_stream(killed.url, key, "fake/stall:1") as (lost, _):
                        os.kill(killed.process.pid, signal.SIGKILL)
                        assert lost.headers[REQUEST_ID] in holders(database)
                with serving(first, *options, env=env) as restarted:
                    # released before it served at all, and only that one
                    assert holders(database) == {kept_id: holders(database)[kept_id]}
                    status = await receipt_status(restarted, key, lost.headers[RECEIPT])
                    assert status == 410
                upstream.gate("live").set()
                body = b"".join([chunk async for chunk in rest])
            assert body.endswith(b"data: [DONE]\n\n")
    assert "released 1 reservations left open by the previous run" in restarted.output
    assert "released" not in live.output
    assert holders(database) == {}
    assert leases(database) == []  # the killed run's dropped, the others ended at their stop
    assert charges(database) == [kept_id]
    assert await check_books(database) == []


def test_a_second_server_on_a_data_dir_stops_before_anything_else(tmp_path: Path) -> None:
    """Its restart recovery would release what the serving one holds: it exits 2,
    naming the data dir, having printed nothing else — before binding, too: asked for
    the port already served, it says the data dir is taken, not the port."""
    data = tmp_path / "data"
    with serving(data) as served:
        port = served.url.rsplit(":", 1)[1]
        second = cli(data, "serve", "--port", port)
        assert httpx.get(served.url + "/ready").status_code == 200  # untouched
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.splitlines() == [
        f"saferouter: the data dir {data} is in use by another saferouter serve "
        f"(it holds {data / 'serve.lock'}); stop it, or give this one its own --data-dir"
    ]
    assert "released" not in served.output
