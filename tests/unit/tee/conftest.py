"""One demo chain for the whole TEE suite: RSA-4096 keys are slow to make."""

from __future__ import annotations

import pytest

from saferouter.tee.demo import ChainKeys, make_chain


@pytest.fixture(scope="session")
def demo() -> ChainKeys:
    """A Genoa VCEK chain from the demo CA."""
    return make_chain()


@pytest.fixture(scope="session")
def demo_vlek() -> ChainKeys:
    """A Genoa VLEK chain from the demo CA (cspID, no hwID)."""
    return make_chain(vlek=True)
