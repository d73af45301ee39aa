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
