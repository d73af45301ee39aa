"""Verify before you send: an httpx client that talks only to an attested gateway.

    from openai import OpenAI
    from saferouter.client import attested_client

    url = "https://gateway.example:8443"
    client = OpenAI(base_url=url + "/v1", api_key=KEY, http_client=attested_client(url))

:func:`attested_client` runs every check of ``saferouter verify`` (the same
:func:`~saferouter.verify.client.run_checks`) and raises
:class:`~saferouter.verify.evidence.CheckFailed` naming the step that failed. The client
it returns is pinned to the TLS key the quote attested (:mod:`saferouter.verify.channel`):
every new connection checks the server's key right after the handshake, and a server
presenting any other key — a TLS-terminating proxy, the gateway restarted with a new key
— is refused before one byte of a request is written. Verify again (a new
``attested_client``) to trust the new key.

Plain ``http://`` is refused unless ``allow_insecure_http``: over plain HTTP nothing ties
the connection to the attested process, so the checks would prove that *a* gateway is
genuine, not that the prompt goes to it. (Local development and tests may opt in.)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TypedDict, Unpack

import anyio.to_thread
import httpx

from .verify.channel import async_pinned_transport, pinned_transport
from .verify.client import Attested, run_checks
from .verify.evidence import CheckFailed


class Expectations(TypedDict, total=False):
    """What the gateway must be, beyond genuine (all optional keywords):

    ``expect_measurement`` (hex) the build and configuration it must run;
    ``allow_demo`` accept a report that chains to a DEMO root (no hardware guarantee);
    ``state`` a ``saferouter verify --state`` file: its logs must be consistent with it
    (and it is updated); ``audience`` the logs' origin authority when it is not the
    URL's; ``cafile`` also require the certificate to chain to these CAs;
    ``allow_insecure_http`` accept an ``http://`` URL (unpinned: nothing binds it)."""

    expect_measurement: str | None
    allow_demo: bool
    state: str | Path | None
    audience: str | None
    cafile: str | None
    allow_insecure_http: bool


def verify_gateway(url: str, **expected: Unpack[Expectations]) -> Attested:
    """Every check of ``saferouter verify``; what was attested, or CheckFailed."""
    if not url.startswith("https://") and not expected.get("allow_insecure_http", False):
        raise CheckFailed(
            f"{url} is not https: nothing would bind the connection to the attested "
            "gateway (allow_insecure_http=True to accept that)"
        )
    state = expected.get("state")
    checked = run_checks(
        url,
        expect_measurement=expected.get("expect_measurement"),
        state_path=Path(state) if state is not None else None,
        allow_demo=expected.get("allow_demo", False),
        audience=expected.get("audience"),
        cafile=expected.get("cafile"),
    )
    return checked.require()


def attested_client(
    url: str, *, timeout_s: float = 600.0, **expected: Unpack[Expectations]
) -> httpx.Client:
    """An ``httpx.Client`` (base URL ``url``) pinned to the gateway's attested TLS key,
    once every check passed. Raises CheckFailed naming the failed step."""
    attested = verify_gateway(url, **expected)
    return pinned_client(url, attested, cafile=expected.get("cafile"), timeout_s=timeout_s)


def pinned_client(
    url: str, attested: Attested, *, cafile: str | None = None, timeout_s: float = 600.0
) -> httpx.Client:
    """An ``httpx.Client`` for a gateway already verified (``attested``): over https,
    pinned to its attested TLS key; over http, as it is (nothing to pin)."""
    transport = None
    if attested.tls_spki_sha256 is not None:
        transport = pinned_transport(attested.tls_spki_sha256, cafile=cafile)
    return httpx.Client(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s)


async def attested_async_client(
    url: str, *, timeout_s: float = 600.0, **expected: Unpack[Expectations]
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` twin of :func:`attested_client` (trio or asyncio). It is
    a coroutine because verifying is network I/O: the checks run in a worker thread, so
    the event loop is not blocked while they do."""
    attested = await anyio.to_thread.run_sync(partial(verify_gateway, url, **expected))
    transport = None
    if attested.tls_spki_sha256 is not None:
        transport = async_pinned_transport(attested.tls_spki_sha256, cafile=expected.get("cafile"))
    return httpx.AsyncClient(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s)
