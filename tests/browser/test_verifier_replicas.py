"""The verifier page on replicas sharing one database (issue 14), in real Chromium: a
receipt one replica signed, checked through another (signature and inclusion against
the signer's key and published head, its attestation said not to be proved), and one
URL answered by one replica, then another, then the first again — a load balancer
landing anywhere — remembered per replica: a first visit, never a fork alarm."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from ..processes import free_port, serving
from .conftest import Watched, gateway, served_lines
from .test_receipts_page import ask, check_receipt, receipt
from .test_verifier import run_verifier

AUDIENCE = "replicas.test"
ENV = {"SAFEROUTER_LEASE_SECONDS": "600"}  # heads published when signed, not by rounds


def test_another_replicas_receipt_is_checked_against_its_own_key(
    page: Watched, tmp_path: Path
) -> None:
    shared = ("--database", f"sqlite:///{tmp_path / 'shared.db'}")
    with (
        gateway(tmp_path / "a", *shared, audience=AUDIENCE, env=ENV) as a,
        gateway(tmp_path / "b", *shared, audience=AUDIENCE, env=ENV) as b,
    ):
        admin = next(line for line in served_lines(a) if line.startswith("sk-sr-"))
        _, receipt_id = ask(a.url, admin)
        receipt(a.url, admin, receipt_id)  # A signs (and publishes) a head covering it
        body = receipt(b.url, admin, receipt_id)
        p = page.page
        p.goto(b.url + "/verifier")
        p.fill("#audience", AUDIENCE)
        rows = check_receipt(p, b.url, body)
        states = ["true", "true", "unchecked", "true", "unchecked", "unchecked"]
        assert [ok for ok, _ in rows] == states, rows
        assert "signed by another replica" in rows[2][1]
        assert "NOT what this page proved" in rows[2][1]
        expect(p.locator("#receipt-verdict")).to_have_text(
            re.compile("^Receipt: DEMO — no hardware guarantee \\(signed by another replica")
        )


def test_one_url_landing_on_each_replica_is_remembered_per_replica(
    page: Watched, tmp_path: Path
) -> None:
    port, shared = free_port(), ("--database", f"sqlite:///{tmp_path / 'shared.db'}")
    env = ENV | {"SAFEROUTER_AUDIENCE": AUDIENCE}
    history: list[str] = []
    for replica in ("a", "b", "a"):
        with serving(tmp_path / replica, *shared, env=env, port=port) as served:
            page.page.goto(served.url + "/verifier")
            steps = run_verifier(page.page, served.url, audience=AUDIENCE)
            assert all(ok == "true" for ok, _ in steps), steps
            history.append(steps[9][1])
    assert "first visit of replica" in history[0] and "other replica" not in history[0]
    assert "first visit of replica" in history[1] and "1 other replica(s) remembered" in history[1]
    assert "consistent with size" in history[2]  # a's own, remembered apart from b's
