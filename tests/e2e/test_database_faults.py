"""PostgreSQL going away under a replica (issue 14, point 3): requests get a prompt,
OpenAI-shaped 503 ``storage_unavailable`` (never a hang, never a 500), ``/ready`` says
not ready while ``/health`` stays up, and the replica recovers by itself when the
database returns — its books whole, requests caught mid-way included. A replica started
while the database is down exits at once with a clear message (no password in it): its
service manager restarts it, and a wrong URL does not pass for a slow database.

Each test runs its own cluster (it stops it), made from the binaries the session's
``pg_cluster`` found (which also skips or fails these tests where PostgreSQL is missing).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import trio

from ..postgres import Cluster, running_cluster
from ..processes import CLI, clean_env, free_port
from ..servers import fake_upstream, write_catalog
from .load import chat_body
from .replicas import Held, SharedDb, check_books, create_key, replica, wait_until

LEASE_S = 3  # SAFEROUTER_LEASE_SECONDS: a heartbeat round every second
WITHIN_S = 60  # a bound for anything stuck, far above any loaded machine's pace
ANSWER_WITHIN_S = 15.0  # what "a bounded time" means here: generous for a loaded machine


async def test_postgresql_down_gets_503_then_the_replica_recovers_by_itself(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    with running_cluster(pg_cluster.bin_dir) as cluster:
        url = cluster.create_database()
        key = create_key(url, tmp_path / "cli", "user", "--credits", "5")
        async with fake_upstream() as upstream:
            catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
            env = {"SAFEROUTER_LEASE_SECONDS": str(LEASE_S)}
            with replica(tmp_path, 0, url, catalog, env=env) as served:
                headers = {"Authorization": f"Bearer {key.secret}"}
                async with httpx.AsyncClient(
                    base_url=served.url, timeout=60, headers=headers
                ) as client:
                    assert (await chat(client, "fake/x")).status_code == 200
                    held = Held(served, key, "outage")
                    body_ids: list[str] = []
                    async with trio.open_nursery() as nursery:
                        # caught mid-way: a stream relaying, a body awaited upstream
                        await nursery.start(held.run)
                        nursery.start_soon(_in_flight_body, client, body_ids)
                        await wait_until(lambda: len(upstream.requests) == 3, WITHIN_S)
                        cluster.stop()
                        await _check_unavailable(client)
                        upstream.gate("outage").set()  # its end meets the outage
                    # the stream was not completed: it could not be settled
                    assert held.payload is not None
                    assert not held.payload.endswith(b"data: [DONE]\n\n")
                    last_event = held.payload.rstrip().rsplit(b"\n\n", 1)[-1]
                    assert json.loads(last_event.removeprefix(b"data: "))["error"]["code"] == (
                        "storage_unavailable"
                    )
                    cluster.start()
                    await _check_recovered(client)
                # (with the database back) the replica itself settles what the outage
                # caught: the stream as relayed (charged), the body that never went out
                # as the 503 its client got (nothing charged)
                with SharedDb(url) as db:
                    await wait_until(lambda: db.open_reservations() == set(), WITHIN_S)
                    assert _unrecorded(db) == []
                    assert db.entries(held.request_id) == ["charge", "release", "reserve"]
                    [body_id] = body_ids
                    assert db.entries(body_id) == ["release", "reserve"]
                    assert db.rows(
                        "SELECT status, outcome, error_type FROM activity WHERE request_id = ?",
                        (body_id,),
                    ) == [(503, "error", "storage_unavailable")]
                    assert db.unbalanced_keys() == []
            assert "Traceback" not in served.output
        assert await check_books(url, tmp_path / "cli") == []


def _unrecorded(db: SharedDb) -> list[str]:
    """Requests admitted (reserved) that have no activity entry."""
    rows = db.rows(
        "SELECT request_id FROM ledger l WHERE kind = 'reserve' AND NOT EXISTS "
        "(SELECT 1 FROM activity a WHERE a.request_id = l.request_id)"
    )
    return [r for (r,) in rows]


async def chat(client: httpx.AsyncClient, model: str, *, stream: bool = False) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=chat_body(model, stream=stream))


def assert_storage_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "storage_unavailable"


async def _in_flight_body(client: httpx.AsyncClient, request_ids: list[str]) -> None:
    """A request the upstream answers after the database went: it cannot be settled, so
    its answer is not handed over (an unbilled answer), and the client is told why."""
    response = await chat(client, "fake/delay:3000")
    request_ids.append(response.headers["x-saferouter-request-id"])
    assert_storage_unavailable(response)


async def _check_unavailable(client: httpx.AsyncClient) -> None:
    """While PostgreSQL is down: prompt 503s, not ready, alive."""
    for stream in (False, True):
        started = time.monotonic()
        with trio.fail_after(ANSWER_WITHIN_S * 2):  # the assertion below says by how much
            response = await chat(client, "fake/delay:0", stream=stream)
        elapsed_s = time.monotonic() - started
        assert_storage_unavailable(response)
        assert elapsed_s < ANSWER_WITHIN_S, elapsed_s
    assert_storage_unavailable(await client.get("/v1/credits"))
    # the public listing answers from the catalog alone, the key sent or not
    listed = await client.get("/v1/models")
    assert listed.status_code == 200 and listed.json()["data"], listed.text
    ready = await client.get("/ready")
    assert ready.status_code == 503, ready.text
    assert (await client.get("/health")).status_code == 200


async def _check_recovered(client: httpx.AsyncClient) -> None:
    """The same process serves again once PostgreSQL is back, with no restart."""
    with trio.fail_after(WITHIN_S):
        while (await chat(client, "fake/x")).status_code != 200:
            await trio.sleep(0.2)
    assert (await client.get("/ready")).status_code == 200
    assert (await chat(client, "fake/delay:0", stream=True)).status_code == 200


def test_a_replica_started_while_postgresql_is_down_exits_with_a_clear_message(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    with running_cluster(pg_cluster.bin_dir) as cluster:
        cluster.create_database("gateway")
        cluster.stop()
        # a password in the URL must not reach the output (trust auth ignores it)
        url = f"postgresql://saferouter:hunter2-secret@{cluster.host}:{cluster.port}/gateway"
        serve = [*CLI, "serve", "--data-dir", str(tmp_path / "data"), "--database", url]
        started = time.monotonic()
        result = subprocess.run(
            [*serve, "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            check=False,
        )
        elapsed_s = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert elapsed_s < ANSWER_WITHIN_S * 2, elapsed_s
    assert "saferouter: " in result.stderr and "Traceback" not in output
    assert "hunter2-secret" not in output
    assert "Created the first admin key" not in output
