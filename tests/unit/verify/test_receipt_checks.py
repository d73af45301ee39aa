"""verify-receipt's steps offline, against a saved state: receipts, proofs and
checkpoints made with the same pure signers the gateway uses, then tampered one way each."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.translog import merkle, note
from saferouter.translog.receipt import receipt_leaf_hash, response_digest, sign_receipt
from saferouter.verify.receipt import Source, attempts_text, check_receipt
from saferouter.verify.state import TreeHead, VerifyState, save_state

AUTHORITY = "gw.example:8443"
RESPONSE = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"hello"}}]}'
MEASUREMENT = "ab" * 32


def make_receipt(key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    return {
        "version": 1,
        "receipt_id": "rcpt_" + "0" * 24,
        "request_id": "req_1",
        "identity": key.public_key().public_bytes_raw().hex(),
        "measurement": MEASUREMENT,
        "response_sha256": response_digest(RESPONSE),
        "response_bytes": len(RESPONSE),
        "requested_model": "model-a",
        "served_model": "model-b",
        "provider": "b",
        "status": 200,
        "cost_micro_usd": 12,
        "estimated": False,
        "attempts": [
            {"number": 1, "provider": "a", "model": "model-a", "outcome": "failed", "status": 503},
            {"number": 2, "provider": "b", "model": "model-b", "outcome": "won", "status": 200},
        ],
    }


def make_document(
    key: ed25519.Ed25519PrivateKey, *, index: int = 2, size: int = 5, authority: str = AUTHORITY
) -> tuple[dict[str, Any], list[bytes]]:
    receipt = make_receipt(key)
    leaves = [merkle.leaf_hash(b"receipt %d" % i) for i in range(size)]
    leaves[index] = receipt_leaf_hash(receipt)
    origin = f"{authority}/receipts"
    root = merkle.root_hash(leaves)
    text = note.Checkpoint(origin=origin, size=size, root_hash=root).text()
    document = {
        "receipt": receipt,
        "signature": base64.b64encode(sign_receipt(receipt, key)).decode(),
        "log_index": index,
        "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(index, leaves)],
        "tree_size": size,
        "checkpoint": note.sign_note(text, origin, key),
        "origin": origin,
    }
    return document, leaves


@pytest.fixture
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def saved(tmp_path: Path, key: ed25519.Ed25519PrivateKey, head: TreeHead) -> Source:
    state = VerifyState(
        identity=key.public_key().public_bytes_raw(),
        authority=AUTHORITY,
        measurement=MEASUREMENT,
        root="DEMO",
        heads={"receipts": head},
    )
    save_state(tmp_path / "state.json", state)
    return Source(state_path=tmp_path / "state.json", allow_demo=True)


def last(document: dict[str, Any], source: Source, response: bytes | None = RESPONSE) -> str:
    steps = check_receipt(document, source, response=response)
    return f"({steps[-1].number}) {steps[-1].name} {steps[-1].ok}: {steps[-1].detail}"


def test_a_receipt_verifies_and_lists_every_attempt(tmp_path: Path, key: Any) -> None:
    document, leaves = make_document(key)
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    steps = check_receipt(document, source, response=RESPONSE)
    assert [s.ok for s in steps] == [True] * 6, steps
    assert attempts_text(document["receipt"]) == [
        "attempt 1: a / model-a: failed (503)",
        "attempt 2: b / model-b: won (200)",
    ]
    # a bigger remembered head cannot be compared offline: said so, not failed
    bigger = saved(tmp_path, key, TreeHead(9, b"\x00" * 32))
    assert last(document, bigger).startswith("(6) response True")
    consistency = check_receipt(document, bigger)[4]
    assert consistency.ok and "not checked offline" in consistency.detail


def test_one_flipped_bit_of_the_response_fails(tmp_path: Path, key: Any) -> None:
    document, leaves = make_document(key)
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    flipped = bytes([RESPONSE[0] ^ 1]) + RESPONSE[1:]
    assert last(document, source, flipped).startswith("(6) response False")


def test_another_gateways_receipt_fails(tmp_path: Path, key: Any) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    document, _ = make_document(other)  # well signed, by a key nobody attested
    source = saved(tmp_path, key, TreeHead(5, b"\x00" * 32))
    assert last(document, source).startswith("(3) identity False")


def test_an_edited_receipt_fails_its_signature(tmp_path: Path, key: Any) -> None:
    document, leaves = make_document(key)
    document["receipt"]["cost_micro_usd"] = 1
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    assert last(document, source).startswith("(1) signature False")


@pytest.mark.parametrize("where", ["hash", "index", "size"])
def test_a_tampered_inclusion_proof_fails(tmp_path: Path, key: Any, where: str) -> None:
    document, leaves = make_document(key)
    if where == "hash":
        first = bytearray.fromhex(document["inclusion_proof"][0])
        first[0] ^= 1
        document["inclusion_proof"][0] = first.hex()
    elif where == "index":
        document["log_index"] = 3
    else:
        document["tree_size"] = 6
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    assert last(document, source).startswith("(4) inclusion False")


def test_a_checkpoint_for_another_origin_fails(tmp_path: Path, key: Any) -> None:
    document, leaves = make_document(key, authority="elsewhere.example")
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    line = last(document, source)
    assert line.startswith("(4) inclusion False") and "elsewhere.example" in line


def test_a_fork_of_the_remembered_head_fails(tmp_path: Path, key: Any) -> None:
    document, _ = make_document(key)
    source = saved(tmp_path, key, TreeHead(5, b"\x07" * 32))
    assert last(document, source).startswith("(5) consistency False")


def test_a_saved_demo_gateway_is_trusted_only_when_demo_is_allowed(
    tmp_path: Path, key: Any
) -> None:
    document, leaves = make_document(key)
    source = saved(tmp_path, key, TreeHead(5, merkle.root_hash(leaves)))
    refused = attrs.evolve(source, allow_demo=False)
    line = last(document, refused)
    assert line.startswith("(2) attested identity False") and "DEMO root" in line


def test_no_one_to_trust_fails(key: Any) -> None:
    document, _ = make_document(key)
    assert last(document, Source()).startswith("(2) attested identity False")
    assert last({"receipt": "x"}, Source()).startswith("(1) signature False")
