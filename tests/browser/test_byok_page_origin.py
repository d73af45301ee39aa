"""The Keys page told to verify a gateway of another origin: that gateway is genuine
(every check passes, across origins), but this page uploads to its own origin, whose
BYOK key is another — so nothing is sealed or sent, and the page says which page to use."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect

from ..servers import write_catalog
from .conftest import gateway, served_lines, upstream_on_a_thread
from .test_byok_page import open_keys_page, verify_gateway


def test_a_gateway_of_another_origin_verifies_but_nothing_is_sealed_to_it(
    browser: Browser, tmp_path: Path
) -> None:
    with upstream_on_a_thread() as upstream:
        config = write_catalog(tmp_path / "catalog.toml", upstream.url)
        with (
            gateway(tmp_path / "here", "--config", str(config)) as here,
            gateway(tmp_path / "there", "--config", str(config)) as there,
        ):
            admin = next(line for line in served_lines(here) if line.startswith("sk-sr-"))
            page, _ = open_keys_page(browser, here.url, admin)
            p = page.page
            p.fill("#byok-url", there.url)
            steps = verify_gateway(p, allow_demo=True)
            assert [ok for ok, _ in steps] == ["true"] * len(steps) and len(steps) == 11
            expect(p.locator("#byok-verdict")).to_have_attribute("data-result", "failed")
            there_key = httpx.get(there.url + "/attestation").json()["byok_public_key"]
            expect(p.locator("#byok-status")).to_contain_text(
                f"The gateway verified holds BYOK key {there_key[:16]}…"
            )
            expect(p.locator("#byok-status")).to_contain_text(
                "open the Keys page of the gateway you verified"
            )
            expect(p.locator("#byok-add")).to_be_hidden()
            listed = httpx.get(here.url + "/v1/byok", headers={"Authorization": f"Bearer {admin}"})
            assert listed.json()["data"] == []
            p.fill("#byok-url", here.url)  # this page's own gateway: the form opens
            verify_gateway(p, allow_demo=True)
            expect(p.locator("#byok-add")).to_be_visible()
            assert page.errors == []
            p.context.close()
