"""RFC 9162 Merkle trees over SHA-256: hashes, proofs, and their verification (pure).

Leaf hash ``SHA-256(0x00 ‖ data)``, node hash ``SHA-256(0x01 ‖ left ‖ right)``; the tree
over n leaves splits at the largest power of two below n (RFC 9162 §2.1.1). Proof
generation follows RFC 6962 §2.1.1–2.1.2 (PATH, SUBPROOF); verification follows RFC
9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency). A verification returns None or
raises :class:`ProofError` — never a bool.

Two ways to the same hashes. Over a list of leaf hashes (:func:`root_hash`,
:func:`inclusion_proof`, :func:`consistency_proof`): O(n), the reference. Over stored
nodes (:func:`span_hash` of the spans :func:`inclusion_spans` and
:func:`consistency_spans` name): O(log n), what a log serves. A node is a perfect
subtree, ``(level, index)`` covering leaves ``[index·2^level, (index+1)·2^level)``;
once its leaves exist its hash never changes, so a store writes each node once, when
its last leaf arrives (:func:`completed_nodes`: the leaf and, amortized, one more). Every subtree
of the RFC tree is either perfect (one stored node) or on the right edge of the tree
(at most ⌊log2 n⌋+1 stored nodes, its compact range, :func:`range_nodes`), so each
proof hash costs O(log n) stored nodes and a whole proof O(log n) in all — the
transparency-dev/merkle "proof node IDs" approach, written as RFC 6962's recursion over
leaf ranges instead of over leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from ..errors import VerificationError

EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""A perfect subtree: ``(level, index)`` covers leaves ``[index·2^level,
(index+1)·2^level)``; leaf ``i`` is ``(0, i)``."""

Span = tuple[int, int]
"""The leaves ``[begin, end)`` of a subtree of the RFC tree."""


class ProofError(VerificationError):
    """An inclusion or consistency proof does not hold."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf *hashes* (RFC 9162 §2.1.1)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_hash(leaves[:k]), root_hash(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, leaves), leaf to root."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"index {index} is outside a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root_hash(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root_hash(leaves[:k])]


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(first, leaves): the tree of ``first`` leaves is a prefix of this one."""
    if not 0 <= first <= len(leaves):
        raise ValueError(f"size {first} is outside a tree of {len(leaves)}")
    if first == 0 or first == len(leaves):
        return []
    return _subproof(first, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), root_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_hash(leaves[:k])]


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The largest aligned perfect subtrees that make up leaves ``[begin, end)``, left to
    right (a compact range). For ``[0, n)`` they are the right edge of the tree, one per
    set bit of n."""
    nodes: list[NodeId] = []
    while begin < end:
        # as large as both begin's alignment and what is left allow (0 is aligned to all)
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def span_hash(span: Span, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH of the subtree ``span`` from its stored nodes (those :func:`range_nodes`
    names). A subtree of the RFC tree that is not perfect splits at its largest power
    of two, which is its first node, so its hash folds its nodes from the right."""
    ids = range_nodes(*span)
    if not ids:
        return EMPTY_ROOT
    h = nodes[ids[-1]]
    for node in reversed(ids[:-1]):
        h = node_hash(nodes[node], h)
    return h


def node_ids(spans: Iterable[Span]) -> list[NodeId]:
    """Every stored node the hashes of ``spans`` need, each once."""
    return sorted({node for span in spans for node in range_nodes(*span)})


def inclusion_spans(index: int, size: int) -> list[Span]:
    """The subtrees whose hashes are PATH(index, D[0:size]), leaf to root (RFC 6962
    §2.1.1): :func:`inclusion_proof` walking leaf ranges instead of leaves."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of {size}")
    spans: list[Span] = []
    begin, end = 0, size
    while end - begin > 1:
        k = _split(end - begin)
        if index < begin + k:
            spans.append((begin + k, end))
            end = begin + k
        else:
            spans.append((begin, begin + k))
            begin += k
    return spans[::-1]  # found root first; a proof lists them leaf first


def consistency_spans(first: int, size: int) -> list[Span]:
    """The subtrees whose hashes are PROOF(first, D[0:size]) (RFC 6962 §2.1.2):
    :func:`consistency_proof` walking leaf ranges instead of leaves."""
    if not 0 <= first <= size:
        raise ValueError(f"size {first} is outside a tree of {size}")
    if first in (0, size):
        return []
    spans: list[Span] = []
    begin, end, whole = 0, size, True
    while first != end:
        k = _split(end - begin)
        if first <= begin + k:
            spans.append((begin + k, end))
            end = begin + k
        else:
            spans.append((begin, begin + k))
            begin += k
            whole = False
    if not whole:  # SUBPROOF's m == n case below the root: that subtree's own hash
        spans.append((begin, end))
    return spans[::-1]


def merge_ids(size: int) -> list[NodeId]:
    """The nodes the next leaf of a tree of ``size`` leaves merges with on its way up
    (its left siblings): one per trailing 1 bit of ``size``, amortized one."""
    ids: list[NodeId] = []
    level = 0
    while size >> level & 1:
        ids.append((level, (size >> level) - 1))
        level += 1
    return ids


def completed_nodes(
    size: int, edge: Mapping[NodeId, bytes], leaves: Iterable[bytes]
) -> dict[NodeId, bytes]:
    """The nodes that appending ``leaves`` to a tree of ``size`` leaves adds: each leaf
    (level 0) and every perfect subtree above it that the leaf completes. ``edge`` holds
    the nodes they merge with: for one leaf :func:`merge_ids`, for several the whole
    right edge ``range_nodes(0, size)``."""
    known = dict(edge)
    new: dict[NodeId, bytes] = {}
    for leaf in leaves:
        h, level, index = leaf, 0, size
        known[(0, size)] = new[(0, size)] = leaf
        while index & 1:  # a right child: its left sibling is complete, so is their parent
            h = node_hash(known[(level, index - 1)], h)
            level, index = level + 1, index >> 1
            known[(level, index)] = new[(level, index)] = h
        size += 1
    return new


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2."""
    if not 0 <= first <= second:
        raise ProofError(f"size {first} cannot precede size {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    if first == 0:
        if proof:
            raise ProofError("the empty tree needs an empty proof")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not path:
        raise ProofError("the consistency proof is empty")
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != first_root or sr != second_root:
        raise ProofError("the trees are not consistent: the log was rewritten or forked")
