"""The verifier page's BYOK check in real Chromium, and what ``runChecks`` resolves to:
the Keys page seals to ``attested.byok_public_key``, so it must be the verified one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..rewriting_proxy import rewriting_proxy
from ..twins import AUDIENCE, quotes_of, twins
from .conftest import Watched
from .test_verifier import STEPS, run_verifier

RUN_CHECKS = """async ([base, opts]) => {
  const ctx = await window.SafeRouterVerifier.runChecks(base, opts, () => {});
  return { passed: ctx.passed, root: ctx.root, attested: ctx.attested };
}"""


def test_the_page_checks_the_byok_key_and_resolves_to_the_verified_one(
    page: Watched, tmp_path: Path
) -> None:
    swap = [False]
    with twins(tmp_path) as (first, second):
        status = httpx.get(second.url + "/attestation").json()
        with rewriting_proxy(second.url, quotes_of(first.url, when=swap)) as proxy:
            page.page.goto(proxy + "/verifier")
            opts = {"allowDemo": True, "audience": AUDIENCE}
            honest: dict[str, Any] = page.page.evaluate(RUN_CHECKS, [proxy, opts])
            refused: dict[str, Any] = page.page.evaluate(
                RUN_CHECKS, [proxy, {**opts, "allowDemo": False}]
            )
            swap[0] = True
            mixed: dict[str, Any] = page.page.evaluate(RUN_CHECKS, [proxy, opts])
            steps = run_verifier(page.page, proxy, audience=AUDIENCE)
    assert honest["passed"] is True and honest["root"] == "DEMO"
    attested = honest["attested"]
    assert attested["byok_public_key"] == status["byok_public_key"]
    assert attested["measurement"] == status["measurement"] == attested["claims"]["measurement"]
    assert attested["identity"] == status["identity"] and attested["root"] == "DEMO"
    assert attested["tls_spki_sha256"] is None
    assert attested["claims"]["byok_public_key"] == status["byok_public_key"]
    assert refused == {"passed": False, "root": None, "attested": None}
    assert mixed["passed"] is False and mixed["attested"] is None
    assert len(steps) == 9 < STEPS and steps[-1][0] == "false", steps
    assert "(9) latest start" in steps[-1][1]
    assert "another BYOK public key than the quote's" in steps[-1][1]
