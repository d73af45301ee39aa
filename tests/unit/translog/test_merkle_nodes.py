"""Proofs from stored nodes (merkle spans) against the reference proofs over leaf lists:
every index and size up to 130, random ones in larger trees, and each verified by RFC
9162's own checks."""

from __future__ import annotations

import random

import pytest

from saferouter.translog import merkle

LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(131)]


def stored_tree(leaves: list[bytes]) -> dict[merkle.NodeId, bytes]:
    """Every node a store keeps, grown one leaf at a time as appends grow it."""
    nodes: dict[merkle.NodeId, bytes] = {}
    for size, leaf in enumerate(leaves):
        edge = {node: nodes[node] for node in merkle.merge_ids(size)}
        nodes.update(merkle.completed_nodes(size, edge, [leaf]))
    return nodes


NODES = stored_tree(LEAVES)


def hashes(spans: list[merkle.Span], nodes: dict[merkle.NodeId, bytes]) -> list[bytes]:
    return [merkle.span_hash(span, nodes) for span in spans]


def test_every_proof_up_to_130_leaves_is_the_references() -> None:
    for n in range(0, 131):
        root = merkle.span_hash((0, n), NODES)
        assert root == merkle.root_hash(LEAVES[:n])
        for i in range(n):
            proof = hashes(merkle.inclusion_spans(i, n), NODES)
            assert proof == merkle.inclusion_proof(i, LEAVES[:n])
            merkle.verify_inclusion(i, n, LEAVES[i], proof, root)
        for m in range(0, n + 1):
            proof = hashes(merkle.consistency_spans(m, n), NODES)
            assert proof == merkle.consistency_proof(m, LEAVES[:n])
            merkle.verify_consistency(m, n, proof, merkle.span_hash((0, m), NODES), root)


def test_random_proofs_in_larger_trees_read_o_log_n_nodes() -> None:
    rng = random.Random(12)
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(5000)]
    nodes = stored_tree(leaves)
    for _ in range(40):
        n = rng.randrange(131, 5001)
        i, m = rng.randrange(n), rng.randrange(n + 1)
        root = merkle.span_hash((0, n), nodes)
        assert root == merkle.root_hash(leaves[:n])
        spans = merkle.inclusion_spans(i, n)
        assert hashes(spans, nodes) == merkle.inclusion_proof(i, leaves[:n])
        merkle.verify_inclusion(i, n, leaves[i], hashes(spans, nodes), root)
        consistency = merkle.consistency_spans(m, n)
        assert hashes(consistency, nodes) == merkle.consistency_proof(m, leaves[:n])
        # the head, a proof and both roots: at most two nodes per level of the tree
        everything = [(0, n), (0, m), *spans, *consistency]
        assert len(merkle.node_ids(everything)) <= 4 * n.bit_length()


def test_nodes_are_completed_once_each_amortized_one_per_leaf() -> None:
    perfect = [node for node in NODES if node[0] > 0]
    assert len(perfect) == len(set(perfect)) == 131 - bin(131).count("1")
    # growing by many leaves at once writes the same nodes as one at a time
    at_once: dict[merkle.NodeId, bytes] = {}
    for begin in range(0, 131, 37):
        edge = {node: NODES[node] for node in merkle.range_nodes(0, begin)}
        at_once.update(merkle.completed_nodes(begin, edge, LEAVES[begin : begin + 37]))
    assert at_once == NODES
    assert all(NODES[(0, i)] == leaf for i, leaf in enumerate(LEAVES))


def test_range_nodes_are_the_right_edge_and_spans_refuse_what_is_outside() -> None:
    assert merkle.range_nodes(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.range_nodes(4, 7) == [(1, 2), (0, 6)]
    assert merkle.merge_ids(11) == [(0, 10), (1, 4)]  # 1011: two trailing ones
    assert merkle.merge_ids(12) == []
    assert merkle.span_hash((0, 0), {}) == merkle.EMPTY_ROOT
    with pytest.raises(ValueError):
        merkle.inclusion_spans(3, 3)
    with pytest.raises(ValueError):
        merkle.consistency_spans(4, 3)
