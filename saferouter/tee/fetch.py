"""Getting AMD certificates: a ``CertFetcher`` protocol and its httpx implementation.

A VCEK never changes for a chip and TCB, and ARK/ASK rarely: they are cached on disk by
URL, forever (every use re-verifies the chain, so a tampered cache can only cause a
rejection). KDS throttles (about one request per 10 s for the same chip and TCB, HTTP
429 with ``Retry-After``; ../shared/reference/sevsnp.md §4): 429 and 5xx are retried
after ``Retry-After`` (or a backoff), within a deadline.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import httpx
import trio
from cryptography import x509

from ..errors import FetchError
from .abi import Product, Report, parse_tcb
from .kds import KDS_BASE, cert_chain_url, load_cert_chain, load_certificate, vcek_url


class CertFetcher(Protocol):
    async def fetch(self, url: str) -> bytes:
        """The body at ``url`` (a KDS URL), or FetchError."""
        ...


class HttpxCertFetcher:
    def __init__(
        self,
        cache_dir: Path,
        *,
        base_url: str = KDS_BASE,
        deadline_s: float = 120.0,
        first_delay_s: float = 10.0,
        max_delay_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self._base = base_url.rstrip("/")
        self._deadline_s = deadline_s
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._transport = transport

    async def fetch(self, url: str) -> bytes:
        cached = self.cache_dir / hashlib.sha256(url.encode()).hexdigest()
        if cached.exists():
            return cached.read_bytes()
        body = await self._download(url.replace(KDS_BASE, self._base, 1))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        partial.write_bytes(body)
        os.replace(partial, cached)  # whole or not at all
        return body

    async def _download(self, url: str) -> bytes:
        delay = self._first_delay_s
        last = "no answer"
        with trio.move_on_after(self._deadline_s):
            async with httpx.AsyncClient(timeout=30.0, transport=self._transport) as client:
                while True:
                    try:
                        response = await client.get(url)
                    except httpx.TransportError as exc:
                        last = f"{type(exc).__name__}"
                    else:
                        if response.status_code == 200:
                            return response.content
                        last = f"HTTP {response.status_code}"
                        if response.status_code not in (429, 500, 502, 503, 504):
                            break
                        delay = _retry_after(response, delay)
                    await trio.sleep(min(delay, self._max_delay_s))
                    delay = min(delay * 2, self._max_delay_s)
        raise FetchError(f"could not fetch {url}: {last}")


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return default


async def fetch_vcek(fetcher: CertFetcher, report: Report, product: Product) -> x509.Certificate:
    """The VCEK for the report's chip at its REPORTED_TCB."""
    tcb = parse_tcb(report.reported_tcb, turin=product is Product.TURIN)
    return load_certificate(await fetcher.fetch(vcek_url(product, report.chip_id, tcb)))


async def fetch_chain(
    fetcher: CertFetcher, product: Product, *, vlek: bool = False
) -> tuple[x509.Certificate, x509.Certificate]:
    """(ASK or ASVK, ARK) for the product."""
    return load_cert_chain(await fetcher.fetch(cert_chain_url(product, vlek=vlek)))
