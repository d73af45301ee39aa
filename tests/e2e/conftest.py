from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..servers import FakeUpstream, Gateway, fake_upstream, gateway_settings, running_gateway


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with fake_upstream() as state:
        yield state


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(tmp_path, upstream.url)) as gw:
        yield gw


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database that replicas share: a SQLite file two local servers
    open, or a PostgreSQL database of its own (``pg_url``)."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))
