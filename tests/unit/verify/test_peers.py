"""verify's replicas step on listings made with the gateway's own signers: a peer's
entry and head signed by the identity it is listed under pass and are named; a listing
whose signatures are another key's (or under no audience it names) fails."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.translog import merkle, note
from saferouter.translog.entry import encode_entry
from saferouter.verify.evidence import CheckFailed, Evidence
from saferouter.verify.peers import peers

AUDIENCE = "replicas.test"


def listing(signer: ed25519.Ed25519PrivateKey, listed_as: bytes) -> dict[str, Any]:
    body = encode_entry("saferouter-startup", {"audience": AUDIENCE, "tee_mode": "demo"}, signer)
    origin = f"{AUDIENCE}/startup"
    text = note.Checkpoint(origin=origin, size=1, root_hash=merkle.leaf_hash(body)).text()
    return {
        "identity": listed_as.hex(),
        "started_at": time.time() - 60,
        "last_seen": time.time() - 5,
        "latest_startup": {"index": 0, "body": base64.b64encode(body).decode()},
        "startup_head": {"tree_size": 1, "checkpoint": note.sign_note(text, origin, signer)},
    }


def evidence(*listed: dict[str, Any]) -> Evidence:
    ev = Evidence(AUDIENCE, False, True, None, None)
    ev.status = {"replicas": list(listed)}
    return ev


def test_peers_signed_by_their_own_identities_are_named() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    identity = key.public_key().public_bytes_raw()
    detail = peers(evidence(listing(key, identity)))
    assert detail.startswith("1 other replica(s) in the shared database, not attested")
    assert re.search(f"{identity.hex()[:16]}… \\(last seen \\d+ s ago, demo", detail)
    assert "startup log of 1 signed by it" in detail
    assert peers(evidence()) == "no other replica serves from this gateway's database"


def test_a_listing_signed_by_another_key_fails() -> None:
    key, listed_as = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    forged = listing(key, listed_as.public_key().public_bytes_raw())
    with pytest.raises(CheckFailed, match="listed startup entry"):
        peers(evidence(forged))
    # the entry its own, the head not: fails too
    own = listing(listed_as, listed_as.public_key().public_bytes_raw())
    own["startup_head"] = forged["startup_head"]
    with pytest.raises(CheckFailed, match="not signed for origin"):
        peers(evidence(own))
