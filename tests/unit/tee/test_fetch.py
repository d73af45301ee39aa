"""The KDS fetcher against a local fake KDS serving the testdata certificates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from saferouter.errors import FetchError
from saferouter.tee import abi
from saferouter.tee.abi import Product
from saferouter.tee.fetch import HttpxCertFetcher, fetch_chain, fetch_vcek

from ...servers import running_server
from .vectors import SETS, SEV


def fake_kds(hits: list[str], *, throttle_first: int = 0) -> QuartTrio:
    app = QuartTrio("fake_kds", static_folder=None)

    @app.get("/vcek/v1/<product>/cert_chain")
    async def chain(product: str) -> Response:
        hits.append(request.full_path)
        assert SEV is not None
        return Response((SEV / f"amd-roots/{product.lower()}_ask_ark.pem").read_bytes())

    @app.get("/vcek/v1/<product>/<hwid>")
    async def vcek(product: str, hwid: str) -> Response:
        hits.append(request.full_path)
        if len(hits) <= throttle_first:
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        assert SEV is not None
        if hwid == "3b42092f69c656d3" and request.args["fmcSPL"] == "0":
            return Response((SEV / "turin-v5-oak/vcek.der").read_bytes())
        return Response("no such chip", status=404)

    return app


async def test_fetches_then_serves_from_the_cache(testdata: object, tmp_path: Path) -> None:
    turin = next(s for s in SETS if s.name == "turin-v5-oak")
    report = abi.parse_report(turin.report_bytes())
    hits: list[str] = []
    async with running_server(fake_kds(hits, throttle_first=2)) as url:
        fetcher = HttpxCertFetcher(tmp_path / "cache", base_url=url, first_delay_s=0.01)
        vcek = await fetch_vcek(fetcher, report, Product.TURIN)
        ask, ark = await fetch_chain(fetcher, Product.TURIN)
        again = await fetch_vcek(fetcher, report, Product.TURIN)
    assert again == vcek
    assert ark.subject.rfc4514_string().startswith("CN=ARK-Turin")
    assert ask.subject.rfc4514_string().startswith("CN=SEV-Turin")
    assert len([h for h in hits if "Turin/3b42" in h]) == 3  # two 429s, then the VCEK once
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    url = (
        "https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3?fmcSPL=0&blSPL=1&teeSPL=0"
        "&snpSPL=2&ucodeSPL=71"
    )
    assert hashlib.sha256(url.encode()).hexdigest() in cached


async def test_gives_up_on_404_and_on_its_deadline(testdata: object, tmp_path: Path) -> None:
    hits: list[str] = []
    async with running_server(fake_kds(hits, throttle_first=10**9)) as url:
        quick = HttpxCertFetcher(tmp_path / "c", base_url=url, first_delay_s=0.01, deadline_s=2.0)
        with pytest.raises(FetchError, match="429"):
            await quick.fetch("https://kdsintf.amd.com/vcek/v1/Milan/00?blSPL=1")
    hits.clear()
    async with running_server(fake_kds(hits)) as url:
        fetcher = HttpxCertFetcher(tmp_path / "c", base_url=url, first_delay_s=0.01)
        with pytest.raises(FetchError, match="404"):
            await fetcher.fetch("https://kdsintf.amd.com/vcek/v1/Milan/00?blSPL=1")
    assert len(hits) == 1  # a 404 is not retried
    unreachable = HttpxCertFetcher(
        tmp_path / "c", base_url="http://127.0.0.1:9", first_delay_s=0.01, deadline_s=2
    )
    # seconds, not tenths: under load a refused connect can take longer than 0.2 s
    with trio.fail_after(60), pytest.raises(FetchError, match="ConnectError"):
        await unreachable.fetch("https://kdsintf.amd.com/vcek/v1/Milan/cert_chain")
