"""Two `saferouter serve` replicas on one database keep every promise one server keeps:
no key overspends, a revocation holds at once everywhere, and the rate limits count the
requests of both (issue 14, point 2). Each test runs on PostgreSQL and on one SQLite
file two servers share."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import trio

from ..processes import Served
from ..servers import fake_upstream, write_catalog
from .replicas import CreatedKey, SharedDb, check_books, create_key, replicas
from .test_concurrency import FUNDED_FOR, REQUESTS, funding, request_body
from .test_rate_limits import wait_for_fresh_window

BURST_WITHIN_S = 180  # a bound for a stuck replica, far above a loaded machine's pace


async def test_500_requests_over_two_replicas_never_overspend(
    tmp_path: Path, database_url: str
) -> None:
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        funded = funding(catalog)
        key = create_key(
            database_url, tmp_path / "cli", "burst", "--credits", f"{funded / 1_000_000:.6f}"
        )
        with replicas(tmp_path, database_url, catalog) as served, SharedDb(database_url) as db:
            with trio.fail_after(BURST_WITHIN_S):
                answers, lowest = await burst(served, key, db)

        admitted = [a for a in answers if a[1] == 200]
        refused = [a for a in answers if a[1] == 402]
        assert len(admitted) + len(refused) == REQUESTS  # no other answer
        # both replicas answered their half (which one's requests win the funding is a
        # race: under load one replica can take all of it, and that is no overspend)
        assert Counter(replica for replica, _, _ in answers) == {0: REQUESTS // 2, 1: REQUESTS // 2}
        for _, _, body in refused:
            error = json.loads(body)["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "insufficient_quota"
        # a refused request reached no upstream: the upstream saw the admitted ones only
        assert len(upstream.requests) == len(admitted)
        # about 100 worst cases fit at once; a request arriving after the first
        # settlements may fit in what they released (their cost is below their reserve)
        assert len(admitted) >= FUNDED_FOR * 0.8
        assert lowest >= 0  # never below zero, at any moment the watcher looked

        with SharedDb(database_url) as db:
            spent = db.value(
                "SELECT CAST(-SUM(amount_micro_usd) AS BIGINT) FROM ledger "
                "WHERE key_id = ? AND kind = 'charge'",
                (key.id,),
            )
            charges = db.value(
                "SELECT count(*) FROM ledger WHERE key_id = ? AND kind = 'charge'", (key.id,)
            )
            assert db.unbalanced_keys() == []
            assert db.open_reservations() == set()
        assert 0 < spent <= funded
        assert charges == len(admitted)
        assert await check_books(database_url, tmp_path / "cli") == []


async def burst(
    served: list[Served], key: CreatedKey, db: SharedDb
) -> tuple[list[tuple[int, int, bytes]], int]:
    """All REQUESTS at once, request i to replica i % 2, while the key's balance in the
    database is watched. Returns (replica, status, body) of each and the lowest balance."""
    answers: list[tuple[int, int, bytes]] = []
    lowest = 10**18
    done = trio.Event()

    async def one(client: httpx.AsyncClient, replica: int, i: int) -> None:
        response = await client.post(
            served[replica].url + "/v1/chat/completions",
            content=request_body(i),
            headers={"Content-Type": "application/json"},
        )
        answers.append((replica, response.status_code, response.content))

    async def watch() -> None:
        nonlocal lowest
        while not done.is_set():
            balance = db.value("SELECT balance_micro_usd FROM keys WHERE id = ?", (key.id,))
            lowest = min(lowest, balance)
            await trio.sleep(0.005)

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        async with trio.open_nursery() as watcher:
            watcher.start_soon(watch)
            async with trio.open_nursery() as nursery:
                for i in range(REQUESTS):
                    nursery.start_soon(one, client, i % len(served), i)
            done.set()
    return answers, lowest


CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


async def chat(
    client: httpx.AsyncClient, replica: Served, key: CreatedKey, body: dict[str, object] = CHAT
) -> httpx.Response:
    return await client.post(
        replica.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key.secret}"},
    )


async def test_a_key_revoked_through_one_replica_is_refused_by_the_other(
    tmp_path: Path, database_url: str
) -> None:
    admin = create_key(database_url, tmp_path / "cli", "admin", "--admin")
    user = create_key(database_url, tmp_path / "cli", "user")
    with replicas(tmp_path, database_url) as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            # each replica has served the key: it is in both key caches
            for replica in (a, b):
                assert (await chat(client, replica, user)).status_code == 200
                headers = {"Authorization": f"Bearer {user.secret}"}
                assert (await client.get(replica.url + "/v1/credits", headers=headers)).is_success
            revoked = await client.delete(
                f"{a.url}/v1/keys/{user.id}", headers={"Authorization": f"Bearer {admin.secret}"}
            )
            assert revoked.status_code == 200 and revoked.json()["revoked"] is True
            for replica in (b, a):  # B's very next request, no pause: refused
                refused = await chat(client, replica, user)
                assert refused.status_code == 401, refused.text
                assert refused.json()["error"]["code"] == "revoked_api_key"
                # and where only the key check stands (no admission behind it to catch it)
                credits = await client.get(
                    replica.url + "/v1/credits", headers={"Authorization": f"Bearer {user.secret}"}
                )
                assert credits.status_code == 401, credits.text


async def test_requests_per_minute_hold_for_both_replicas_together(
    tmp_path: Path, database_url: str
) -> None:
    key = create_key(database_url, tmp_path / "cli", "limited", "--rpm", "10")
    with replicas(tmp_path, database_url) as served:
        async with httpx.AsyncClient(timeout=30) as client:
            await wait_for_fresh_window(margin_s=15)
            responses = [await chat(client, served[i % 2], key) for i in range(20)]
    assert [r.status_code for r in responses] == [200] * 10 + [429] * 10
    # one count for both: A and B took turns counting it down
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:10]] == [
        str(n) for n in range(9, -1, -1)
    ]
    assert responses[10].json()["error"]["code"] == "rate_limit_exceeded"


async def test_tokens_per_minute_hold_for_both_replicas_together(
    tmp_path: Path, database_url: str
) -> None:
    # every answer reports 3 prompt + 17 completion tokens: 20, so 100 allow 5 requests
    body = {"model": "fake/usage:17", "messages": [{"role": "user", "content": "hi"}]}
    key = create_key(database_url, tmp_path / "cli", "limited", "--tpm", "100")
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        with replicas(tmp_path, database_url, catalog) as served:
            async with httpx.AsyncClient(timeout=30) as client:
                await wait_for_fresh_window(margin_s=15)
                responses = [await chat(client, served[i % 2], key, body) for i in range(20)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 15
    assert len(upstream.requests) == 5
    refused = responses[5].json()["error"]
    assert refused["code"] == "rate_limit_exceeded" and "tokens" in refused["message"]
