"""`saferouter verify` checks the BYOK public key: the newest startup entry must name the
key the quote claims, and what passed says which key to seal to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from saferouter.verify.client import run_checks

from ..rewriting_proxy import rewriting_proxy
from ..twins import AUDIENCE, quotes_of, serve, twins


def test_a_quote_whose_byok_key_the_newest_start_did_not_log_fails_step_9(
    tmp_path: Path,
) -> None:
    """A proxy in front of one instance answers quotes with the other's, for the same
    nonce: every signature holds, but the key a client would seal to is not the one the
    public log says this start holds."""
    swap = [False]
    with twins(tmp_path) as (first, second):
        first_key = httpx.get(first.url + "/attestation").json()["byok_public_key"]
        second_key = httpx.get(second.url + "/attestation").json()["byok_public_key"]
        with rewriting_proxy(second.url, quotes_of(first.url, when=swap)) as proxy:
            honest = run_checks(proxy, allow_demo=True, audience=AUDIENCE)
            swap[0] = True
            mixed = run_checks(proxy, allow_demo=True, audience=AUDIENCE)
    assert first_key != second_key
    assert honest.passed, honest.steps
    assert honest.require().byok_public_key == second_key
    failed = mixed.steps[-1]
    assert (failed.number, failed.name, failed.ok) == (9, "latest start", False), mixed.steps
    assert "another BYOK public key than the quote's" in failed.detail
    assert mixed.attested is None


def test_a_replaced_byok_claim_fails_the_binding(tmp_path: Path) -> None:
    """The claim is bound by REPORT_DATA, so a proxy cannot change it unseen (step 4)."""

    def replace_key(path: str, data: dict[str, Any]) -> None:
        if path == "/attestation/quote":
            data["claims"]["byok_public_key"] = "00" * 32

    with serve(tmp_path / "data") as served, rewriting_proxy(served.url, replace_key) as proxy:
        checked = run_checks(proxy, allow_demo=True, audience=AUDIENCE)
    assert checked.steps[-1].name == "REPORT_DATA binding" and not checked.passed
