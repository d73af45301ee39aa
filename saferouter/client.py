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

from pathlib import Path

import anyio.to_thread
import httpx

from .verify.channel import async_pinned_transport, pinned_transport
from .verify.client import Attested, run_checks
from .verify.evidence import CheckFailed


def verify_gateway(
    url: str,
    *,
    expect_measurement: str | None = None,
    allow_demo: bool = False,
    state: str | Path | None = None,
    audience: str | None = None,
    cafile: str | None = None,
    allow_insecure_http: bool = False,
) -> Attested:
    """Every check of ``saferouter verify``; what was attested, or CheckFailed."""
    if not url.startswith("https://") and not allow_insecure_http:
        raise CheckFailed(
            f"{url} is not https: nothing would bind the connection to the attested "
            "gateway (allow_insecure_http=True to accept that)"
        )
    checked = run_checks(
        url,
        expect_measurement=expect_measurement,
        state_path=Path(state) if state is not None else None,
        allow_demo=allow_demo,
        audience=audience,
        cafile=cafile,
    )
    return checked.require()


def attested_client(
    url: str,
    *,
    expect_measurement: str | None = None,
    allow_demo: bool = False,
    state: str | Path | None = None,
    audience: str | None = None,
    cafile: str | None = None,
    allow_insecure_http: bool = False,
    timeout_s: float = 600.0,
) -> httpx.Client:
    """An ``httpx.Client`` (base URL ``url``) pinned to the gateway's attested TLS key,
    once every check passed. Raises CheckFailed naming the failed step."""
    attested = verify_gateway(
        url,
        expect_measurement=expect_measurement,
        allow_demo=allow_demo,
        state=state,
        audience=audience,
        cafile=cafile,
        allow_insecure_http=allow_insecure_http,
    )
    transport = None
    if attested.tls_spki_sha256 is not None:
        transport = pinned_transport(attested.tls_spki_sha256, cafile=cafile)
    return httpx.Client(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s)


async def attested_async_client(
    url: str,
    *,
    expect_measurement: str | None = None,
    allow_demo: bool = False,
    state: str | Path | None = None,
    audience: str | None = None,
    cafile: str | None = None,
    allow_insecure_http: bool = False,
    timeout_s: float = 600.0,
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` twin of :func:`attested_client` (trio or asyncio). It is
    a coroutine because verifying is network I/O: the checks run in a worker thread, so
    the event loop is not blocked while they do."""

    def verify() -> Attested:
        return verify_gateway(
            url,
            expect_measurement=expect_measurement,
            allow_demo=allow_demo,
            state=state,
            audience=audience,
            cafile=cafile,
            allow_insecure_http=allow_insecure_http,
        )

    attested = await anyio.to_thread.run_sync(verify)
    transport = None
    if attested.tls_spki_sha256 is not None:
        transport = async_pinned_transport(attested.tls_spki_sha256, cafile=cafile)
    return httpx.AsyncClient(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s)
