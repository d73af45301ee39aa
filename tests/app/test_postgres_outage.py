"""The gateway while its PostgreSQL is away: every request that needs the store gets 503
``storage_unavailable`` with ``Retry-After`` within a bound (no hang, no 500), ``/ready``
says not ready, ``/health`` stays up, and all of it recovers by itself when the database
returns. The whole app in process (its chat endpoint included) on a cluster of the
test's own, stopped and started under it; the e2e twin on real processes is
``tests/e2e/test_database_faults.py``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from saferouter.app import create_app
from saferouter.config import load_settings
from saferouter.keys import generate_key
from saferouter.storage.postgres import PostgresStore
from tests.postgres import Cluster, running_cluster

UNAVAILABLE_WITHIN_S = 10.0
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def own_cluster(pg_cluster: Cluster) -> Iterator[Cluster]:
    with running_cluster(pg_cluster.bin_dir) as cluster:
        yield cluster


@pytest.fixture
async def client(own_cluster: Cluster, tmp_path: Path) -> AsyncIterator[Any]:
    settings = load_settings({}, data_dir=tmp_path / "data", database=own_cluster.url())
    store = PostgresStore(own_cluster.create_database(), pool_size=3)
    admin = generate_key()
    await store.create_key(
        name="admin", role="admin", key_hash=admin.hash, prefix=admin.display_prefix
    )
    app = create_app(settings, store=store)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        client.admin = {"Authorization": f"Bearer {admin.secret}"}
        yield client


async def test_an_unreachable_database_is_a_503_to_retry_until_it_returns(
    client: Any, own_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    async def chat() -> Any:
        return await client.post("/v1/chat/completions", json=CHAT, headers=client.admin)

    assert (await client.get("/ready")).status_code == 200
    assert (await chat()).status_code == 200

    await trio.to_thread.run_sync(own_cluster.stop)
    caplog.clear()
    for call in (chat, lambda: client.get("/v1/keys", headers=client.admin)):
        started = trio.current_time()
        response = await call()
        assert trio.current_time() - started < UNAVAILABLE_WITHIN_S
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        error = json.loads(await response.get_data())["error"]
        assert (error["type"], error["code"]) == ("server_error", "storage_unavailable")
        assert set(error) == {"message", "type", "param", "code"}
    started = trio.current_time()
    assert (await client.get("/ready")).status_code == 503
    assert trio.current_time() - started < UNAVAILABLE_WITHIN_S
    assert (await client.get("/health")).status_code == 200
    ours = [r for r in caplog.records if r.name == "saferouter"]
    assert ours and all(r.levelno == logging.WARNING and not r.exc_info for r in ours)
    assert "Traceback" not in caplog.text and own_cluster.url() not in caplog.text

    await trio.to_thread.run_sync(own_cluster.start)
    assert (await client.get("/ready")).status_code == 200
    assert (await chat()).status_code == 200
    assert (await client.get("/v1/keys", headers=client.admin)).status_code == 200
