"""The verifier page's pure code in real Chromium, against the Python it mirrors: RFC 9162
proofs from ``translog/merkle.py`` for every tree up to 24 leaves (valid and bent), and
``canonical()`` byte for byte against ``canonical.canonical_json`` (RFC 8785), and receipt
signatures made by ``translog/receipt.py``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.canonical import canonical_json
from saferouter.translog import merkle
from saferouter.translog.receipt import sign_receipt

from .conftest import Watched, flip

SIZES = range(1, 25)


def case(ok: bool, *args: object) -> dict[str, Any]:
    return {"ok": ok, "args": list(args)}


def inclusion_cases() -> list[dict[str, Any]]:
    """Every leaf of every tree: the proof as made, and three ways of bending it."""
    cases = []
    for size in SIZES:
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
        root = merkle.root_hash(leaves).hex()
        for index in range(size):
            proof = [h.hex() for h in merkle.inclusion_proof(index, leaves)]
            leaf = leaves[index].hex()
            cases.append(case(True, index, size, leaf, proof, root))
            if proof:
                cases.append(case(False, index, size, leaf, [flip(proof[0]), *proof[1:]], root))
                cases.append(case(False, index, size, leaf, proof[:-1], root))
                cases.append(case(False, (index + 1) % size, size, leaf, proof, root))
    return cases


def consistency_cases() -> list[dict[str, Any]]:
    cases = []
    for second in SIZES:
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(second)]
        root = merkle.root_hash(leaves).hex()
        for first in range(1, second + 1):
            proof = [h.hex() for h in merkle.consistency_proof(first, leaves)]
            old = merkle.root_hash(leaves[:first]).hex()
            cases.append(case(True, first, second, proof, old, root))
            cases.append(case(False, first, second, proof, flip(old), root))
            if proof:
                cases.append(case(False, first, second, [flip(proof[0]), *proof[1:]], old, root))
    return cases


def wrongly_judged(page: Watched, verify: str, cases: list[dict[str, Any]]) -> list[Any]:
    """The cases the page's ``verify`` judges otherwise than their "ok" (hex strings and
    lists of them are passed as bytes)."""
    page.page.goto("/verifier")
    return page.page.evaluate(
        """async ([name, cases]) => {
          const V = window.SafeRouterVerifier, wrong = [];
          const bytes = (a) => Array.isArray(a) ? a.map(V.unhex)
                               : typeof a === "string" ? V.unhex(a) : a;
          for (const c of cases) {
            let ok = true;
            try { await V[name](...c.args.map(bytes)); } catch (error) { ok = false; }
            if (ok !== c.ok) wrong.push(c);
          }
          return wrong;
        }""",
        [verify, cases],
    )


def test_inclusion_proofs_of_every_small_tree(page: Watched) -> None:
    cases = inclusion_cases()
    assert len(cases) > 1000 and wrongly_judged(page, "verifyInclusion", cases) == []


def test_consistency_proofs_of_every_small_tree(page: Watched) -> None:
    cases = consistency_cases()
    assert len(cases) > 500 and wrongly_judged(page, "verifyConsistency", cases) == []


CANONICAL = [
    {"b": 1, "a": [True, False, None, "x"], "": {}},
    # UTF-16 order: U+1F600 (a surrogate pair, D83D…) sorts before U+FFFF and U+E000;
    # code-point order would put it last
    {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "é": 4, "z": 5, "Z": 6, "10": 7, "9": 8},
    ["\x00\x01\x1f\x7f", "\b\f\n\r\t", '"\\/', "\u2028\u2029", "ü€𝄞", ""],
    [0, -1, 2**53 - 1, -(2**53 - 1), 1_000_000],
    {
        "version": 1,
        "receipt_id": "rcpt_0123456789abcdef01234567",
        "attempts": [
            {"number": 1, "provider": "demo", "model": "demo", "outcome": "won", "status": 200}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "nested": {"deeper": [[], {}]}},
        "prices": None,
        "estimated": False,
    },
]


@pytest.mark.parametrize("value", CANONICAL)
def test_canonical_is_the_pythons_rfc_8785(page: Watched, value: Any) -> None:
    page.page.goto("/verifier")
    text = page.page.evaluate(
        "t => window.SafeRouterVerifier.canonical(JSON.parse(t))", json.dumps(value)
    )
    assert text.encode() == canonical_json(value)


@pytest.mark.parametrize("text", ["1.5", "9007199254740992", '"\\ud800"', '{"a": [1e400]}'])
def test_canonical_refuses_what_python_refuses(page: Watched, text: str) -> None:
    page.page.goto("/verifier")
    refused = page.page.evaluate(
        """t => { try { window.SafeRouterVerifier.canonical(JSON.parse(t)); return false; }
                  catch (error) { return true; } }""",
        text,
    )
    assert refused


def test_receipt_signatures_as_python_makes_them(page: Watched) -> None:
    """``translog/receipt.py`` signs, the page verifies: the same context and bytes."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key().public_bytes_raw().hex()
    receipt = CANONICAL[-1] | {"note": "\U0001f600 ü \u2028", "cost_micro_usd": 1234}
    signature = base64.b64encode(sign_receipt(receipt, key)).decode()
    changed = receipt | {"cost_micro_usd": 1235}
    page.page.goto("/verifier")
    verdicts = page.page.evaluate(
        """async ([receipts, signature, key]) => {
          const V = window.SafeRouterVerifier;
          return Promise.all(receipts.map((r) =>
            V.verifyReceiptSignature(r, V.b64(signature), V.unhex(key))
              .then(() => "ok", (e) => e.message)));
        }""",
        [[receipt, changed], signature, public],
    )
    assert verdicts == ["ok", "the receipt's signature does not verify"]
