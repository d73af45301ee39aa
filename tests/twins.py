"""Two running gateways that share an identity and a measurement but each hold a BYOK key
of their own, and the proxy rewrite that answers one's quotes with the other's: a quote
and a startup log that disagree on ``byok_public_key``, every signature intact."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from .processes import Served, free_port, serving
from .rewriting_proxy import Rewrite

AUDIENCE = "gateway.example"  # both instances: one measurement, one log origin


def serve(data: Path) -> Any:
    """`saferouter serve` under :data:`AUDIENCE` (so the port is not in the measurement)."""
    return serving(data, env={"SAFEROUTER_AUDIENCE": AUDIENCE}, port=free_port())


@contextmanager
def twins(tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    """Both instances, running: the second is a copy of the first's data dir (identity,
    demo attester, first entry) without its BYOK key file, so it made its own."""
    a, b = tmp_path / "a", tmp_path / "b"
    with serve(a):
        pass
    shutil.copytree(a, b)
    for key_file in b.glob("byok-*.key"):
        key_file.unlink()
    with ExitStack() as stack:
        yield stack.enter_context(serve(a)), stack.enter_context(serve(b))


def quotes_of(other: str, *, when: list[bool]) -> Rewrite:
    """A rewrite answering each quote with ``other``'s quote for the same nonce, while
    ``when[0]`` is true."""

    def rewrite(path: str, data: dict[str, Any]) -> None:
        if when[0] and path == "/attestation/quote":
            nonce = data["claims"]["nonce"]
            answer = httpx.post(other + "/attestation/quote", json={"nonce": nonce}, timeout=30)
            data.clear()
            data.update(answer.json())

    return rewrite
