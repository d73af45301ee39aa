"""PostgreSQL SIGKILLed under load, then restarted (issue 14, point 3, the hard way): the
postmaster dies with transactions in flight and its backends with it; the database
comes back through crash recovery. While it is gone clients get 503
``storage_unavailable`` (a stream: an error event), never a 500 nor a broken
connection; once it is back the same replica serves again by itself, and the books are
whole: every request a client saw complete has its activity entry and exactly one
charge, no reservation stays open, every key's balance is its ledger's sum.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs
import httpx
import trio

from ..postgres import Cluster, running_cluster
from ..servers import fake_upstream, write_catalog
from .load import one_request
from .replicas import SharedDb, check_books, create_key, replica, wait_until

WITHIN_S = 90  # a bound for anything stuck, far above any loaded machine's pace
CLIENTS = 6
COMPLETED_BEFORE_KILL = 30


@attrs.define
class Clients:
    """Clients looping on one replica through an outage: what they saw, by request id."""

    secrets: list[str]
    completed: set[str] = attrs.field(factory=set)
    unavailable: int = 0
    # anything but 200 or 503 storage_unavailable, and connections the gateway broke (a
    # stream's receipt write meeting the outage once escaped after its [DONE])
    wrong: list[str] = attrs.field(factory=list)

    async def loop(self, url: str, seed: int, stop: trio.Event) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not stop.is_set():
                try:
                    stream, response, payload = await one_request(client, rng, self.secrets)
                except httpx.TransportError as exc:
                    self.wrong.append(f"{type(exc).__name__}: {exc}")
                    continue
                request_id = response.headers.get("x-saferouter-request-id", "?")
                if response.status_code == 503 and b"storage_unavailable" in payload:
                    self.unavailable += 1
                elif response.status_code != 200:
                    self.wrong.append(f"{response.status_code} {payload[:200]!r}")
                elif not stream or payload.endswith(b"data: [DONE]\n\n"):
                    self.completed.add(request_id)
                elif b"storage_unavailable" in payload:
                    self.unavailable += 1  # a stream the outage ended: an error event
                else:
                    self.wrong.append(f"a stream cut short: {payload[-200:]!r}")


async def restart(cluster: Cluster) -> None:
    """Start the killed cluster; its orphaned backends may hold its shared memory for a
    moment (start refuses then): tried again until it comes up."""
    with trio.fail_after(WITHIN_S):
        while True:
            try:
                cluster.start()
                return
            except RuntimeError:
                await trio.sleep(0.5)


async def test_postgresql_sigkilled_mid_load_then_restarted_keeps_the_books(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    with running_cluster(pg_cluster.bin_dir) as cluster:
        url = cluster.create_database()
        keys = [create_key(url, tmp_path / "cli", f"k{i}", "--credits", "1000") for i in (0, 1)]
        clients = Clients([key.secret for key in keys])
        async with fake_upstream() as upstream:
            catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
            env = {"SAFEROUTER_LEASE_SECONDS": "3"}
            with replica(tmp_path, 0, url, catalog, env=env) as served:
                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    for seed in range(CLIENTS):
                        nursery.start_soon(clients.loop, served.url, seed, stop)
                    await wait_until(lambda: len(clients.completed) >= COMPLETED_BEFORE_KILL)
                    cluster.kill()
                    await wait_until(lambda: clients.unavailable >= CLIENTS, WITHIN_S)
                    await restart(cluster)
                    after = len(clients.completed) + COMPLETED_BEFORE_KILL
                    await wait_until(lambda: len(clients.completed) >= after, WITHIN_S)
                    stop.set()
                with SharedDb(url) as db:
                    with trio.move_on_after(WITHIN_S):
                        await wait_until(lambda: db.open_reservations() == set(), WITHIN_S)
                    held = sorted(db.open_reservations())
                    # (a request a client saw complete, with only its reserve entry: its
                    # charge was acknowledged by a commit the crash then lost)
                    assert held == [], [(r, db.entries(r), r in clients.completed) for r in held]
                    charged = [
                        r for (r,) in db.rows("SELECT request_id FROM ledger WHERE kind = 'charge'")
                    ]
                    ok = {
                        r for (r,) in db.rows("SELECT request_id FROM activity WHERE status = 200")
                    }
                    assert len(charged) == len(set(charged))
                    assert clients.completed <= ok
                    assert clients.completed <= set(charged)
                    assert db.unbalanced_keys() == []
            assert clients.wrong == []
            assert "Traceback" not in served.output
        assert await check_books(url, tmp_path / "cli") == []
