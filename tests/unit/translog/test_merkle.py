"""RFC 9162 proofs: every tree size and index up to 40, and the real Rekor proofs."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from saferouter.translog import merkle
from saferouter.translog.merkle import ProofError

from ...conftest import testdata_dir as shared_testdata

LEAVES = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(41)]


def reference_root(leaves: list[bytes]) -> bytes:
    """A second, deliberately plain MTH (RFC 6962 §2.1) to check the first against."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


def test_roots_match_the_reference_and_known_values() -> None:
    assert merkle.root_hash([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    for n in range(41):
        assert merkle.root_hash(LEAVES[:n]) == reference_root(LEAVES[:n])


def test_every_inclusion_proof_up_to_40_leaves() -> None:
    for n in range(1, 41):
        root = merkle.root_hash(LEAVES[:n])
        for i in range(n):
            proof = merkle.inclusion_proof(i, LEAVES[:n])
            merkle.verify_inclusion(i, n, LEAVES[i], proof, root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, LEAVES[40], proof, root)  # another leaf
            if proof:
                bad = [bytes(32), *proof[1:]]
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(i, n, LEAVES[i], bad, root)
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(i, n, LEAVES[i], proof[:-1], root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, LEAVES[i], [*proof, bytes(32)], root)


def test_every_consistency_proof_up_to_40_leaves() -> None:
    for n in range(0, 41):
        second = merkle.root_hash(LEAVES[:n])
        for m in range(0, n + 1):
            first = merkle.root_hash(LEAVES[:m])
            proof = merkle.consistency_proof(m, LEAVES[:n])
            merkle.verify_consistency(m, n, proof, first, second)
            if 0 < m < n:
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, proof, bytes(32), second)
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, proof, first, bytes(32))
                forked = merkle.root_hash([*LEAVES[: m - 1], LEAVES[40]])
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, proof, forked, second)
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, [*proof, bytes(32)], first, second)


def test_edge_cases() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, LEAVES[:3])
    with pytest.raises(ValueError):
        merkle.consistency_proof(4, LEAVES[:3])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(3, 3, LEAVES[0], [], merkle.root_hash(LEAVES[:3]))
    with pytest.raises(ProofError):
        merkle.verify_consistency(4, 3, [], bytes(32), bytes(32))
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 3, [bytes(32)], bytes(32), bytes(32))
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 3, [bytes(32)], bytes(32), bytes(32))
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 5, [], bytes(32), bytes(32))


@pytest.mark.parametrize(
    "bundle", ["rekor-v1-bundle.sigstore.json", "rekor-v2-bundle.sigstore.json"]
)
def test_real_rekor_inclusion_proofs(testdata: object, bundle: str) -> None:
    root_dir = shared_testdata()
    assert root_dir is not None
    entry = json.loads((root_dir / "translog" / bundle).read_text())["verificationMaterial"][
        "tlogEntries"
    ][0]
    proof = entry["inclusionProof"]
    body = base64.b64decode(entry["canonicalizedBody"])
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    root = base64.b64decode(proof["rootHash"])
    index, size = int(proof["logIndex"]), int(proof["treeSize"])
    merkle.verify_inclusion(index, size, merkle.leaf_hash(body), hashes, root)
    tampered = bytearray(body)
    tampered[10] ^= 1
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, merkle.leaf_hash(bytes(tampered)), hashes, root)
    for i in range(len(hashes)):
        flipped = list(hashes)
        flipped[i] = bytes([flipped[i][0] ^ 1]) + flipped[i][1:]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, merkle.leaf_hash(body), flipped, root)
