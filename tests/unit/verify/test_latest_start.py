"""Step (9) on its own: the newest startup entry against the quote's claims, as vectors
(the entry's spec, the quote's claim → passes, or the reason it fails)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from saferouter.verify.evidence import CheckFailed, Evidence
from saferouter.verify.logs import latest_start

IDENTITY, MEASUREMENT = b"\x01" * 32, "ab" * 32
KEY, OTHER = "5e" * 32, "7f" * 32
ABSENT = object()


def evidence(logged: object, claimed: object) -> Evidence:
    spec: dict[str, Any] = {
        "identity": IDENTITY.hex(),
        "measurement": MEASUREMENT,
        "tee_mode": "demo",
        "build": "saferouter/test",
    }
    claims: dict[str, Any] = {"identity": IDENTITY.hex(), "measurement": MEASUREMENT}
    if logged is not ABSENT:
        spec["byok_public_key"] = logged
    if claimed is not ABSENT:
        claims["byok_public_key"] = claimed
    ev = Evidence(
        authority="gw", secure=False, allow_demo=True, expect_measurement=None, state_path=None
    )
    ev.identity, ev.measurement, ev.quote = IDENTITY, MEASUREMENT, {"claims": claims}
    ev.startup_bodies = [json.dumps({"spec": spec}).encode()]
    return ev


@pytest.mark.parametrize(
    ("logged", "claimed", "attested"),
    [
        (KEY, KEY, KEY),
        (ABSENT, KEY, KEY),  # an entry of a build before BYOK names no key
        (ABSENT, ABSENT, None),  # a gateway before BYOK: nothing to seal to
        (None, None, None),
    ],
)
def test_valid(logged: object, claimed: object, attested: str | None) -> None:
    ev = evidence(logged, claimed)
    latest_start(ev)
    assert ev.byok_public_key == attested


@pytest.mark.parametrize(
    ("logged", "claimed", "reason"),
    [
        (OTHER, KEY, "another BYOK public key"),
        (KEY, ABSENT, "another BYOK public key"),  # the quote hides the logged key
        (KEY, None, "another BYOK public key"),
        (KEY.upper(), KEY.upper(), "not 64 lowercase hex"),
        (KEY[:-2], KEY[:-2], "not 64 lowercase hex"),
        (7, 7, "not 64 lowercase hex"),
    ],
)
def test_invalid(logged: object, claimed: object, reason: str) -> None:
    ev = evidence(logged, claimed)
    with pytest.raises(CheckFailed, match=reason):
        latest_start(ev)
    assert ev.byok_public_key is None
