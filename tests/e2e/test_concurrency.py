"""500 concurrent requests against a key funded for about 100: never overspent, with one
worker and with two."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import httpx
import trio

from saferouter.accounting import reservation_micro_usd

from ..processes import new_key, serving
from ..servers import FakeUpstream, Gateway, fake_upstream, write_catalog

REQUESTS = 500
FUNDED_FOR = 100


def request_body(i: int) -> bytes:
    # same length for every i, so every reservation is the same
    return json.dumps(
        {
            "model": "fake/delay:2500",
            "max_tokens": 100,
            "stream": i % 2 == 1,
            "messages": [{"role": "user", "content": f"question {i:04d}"}],
        }
    ).encode()


def funding(gateway_catalog: Path) -> int:
    """Credits for exactly FUNDED_FOR worst-case reservations."""
    from saferouter.catalog import load_catalog

    model = load_catalog(gateway_catalog).resolve("fake/delay:2500")
    now = dt.datetime.now(dt.UTC)
    one = reservation_micro_usd(model, request_body(0), 100, price=model.pricing.price_at(now))
    return one * FUNDED_FOR


async def burst(url: str, key: str, db_path: Path) -> tuple[list[int], int]:
    """Fire all requests at once; watch the key's balance in the database meanwhile.
    Returns the statuses and the lowest balance seen."""
    statuses: list[int] = []
    lowest = 10**18
    done = trio.Event()

    async def one(client: httpx.AsyncClient, i: int) -> None:
        response = await client.post(
            "/v1/chat/completions",
            content=request_body(i),
            headers={"Content-Type": "application/json"},
        )
        await response.aread()
        statuses.append(response.status_code)

    async def watch() -> None:
        nonlocal lowest
        db = sqlite3.connect(db_path)
        try:
            while not done.is_set():
                for (balance,) in db.execute(
                    "SELECT balance_micro_usd FROM keys WHERE metered = 1"
                ):
                    lowest = min(lowest, balance)
                await trio.sleep(0.005)
        finally:
            db.close()

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        async with trio.open_nursery() as watcher:
            watcher.start_soon(watch)
            async with trio.open_nursery() as nursery:
                for i in range(REQUESTS):
                    nursery.start_soon(one, client, i)
            done.set()
    return statuses, lowest


def check_books(
    db_path: Path, funded: int, upstream: FakeUpstream, statuses: list[int], lowest: int
) -> None:
    admitted = statuses.count(200)
    assert statuses.count(402) == REQUESTS - admitted  # every other answer is a 402
    assert len(upstream.requests) == admitted  # a refused request never reached upstream
    # about 100 worst cases fit at once; a request arriving after the first settlements
    # may fit in what they released (their cost is below their reservation)
    assert admitted >= FUNDED_FOR * 0.8
    assert lowest >= 0
    db = sqlite3.connect(db_path)
    try:
        key_id, balance, reserved = db.execute(
            "SELECT id, balance_micro_usd, reserved_micro_usd FROM keys WHERE metered = 1"
        ).fetchone()
        (ledger_sum,) = db.execute(
            "SELECT SUM(amount_micro_usd) FROM ledger WHERE key_id = ?", (key_id,)
        ).fetchone()
        (spent,) = db.execute(
            "SELECT -SUM(amount_micro_usd) FROM ledger WHERE key_id = ? AND kind = 'charge'",
            (key_id,),
        ).fetchone()
        (charges,) = db.execute(
            "SELECT count(*) FROM ledger WHERE key_id = ? AND kind = 'charge'", (key_id,)
        ).fetchone()
    finally:
        db.close()
    assert balance == ledger_sum >= 0
    assert reserved == 0
    assert 0 < spent <= funded
    assert charges == admitted


async def test_one_worker_never_overspends(
    tmp_path: Path, upstream: FakeUpstream, gateway: Gateway
) -> None:
    funded = funding(gateway.settings.catalog_path)
    key = await gateway.create_key(credits_micro_usd=funded)
    statuses, lowest = await burst(gateway.url, key, gateway.settings.data_dir / "saferouter.db")
    check_books(gateway.settings.data_dir / "saferouter.db", funded, upstream, statuses, lowest)


async def test_two_workers_never_overspend(tmp_path: Path) -> None:
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        data = tmp_path / "data"
        funded = funding(catalog)
        key = new_key(data, "--name", "burst", "--credits", f"{funded / 1_000_000:.6f}")
        with serving(
            data, "--workers", "2", "--config", str(catalog), env={"FAKE_API_KEY": "k"}
        ) as served:
            statuses, lowest = await burst(served.url, key, data / "saferouter.db")
        check_books(data / "saferouter.db", funded, upstream, statuses, lowest)
