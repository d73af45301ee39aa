"""SignedLog over each store: heads signed once per size, proofs at sizes around powers
of two that verify, and a 100k-entry log whose head reads O(log n) rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.storage import NewLogEntry, Store, logs
from saferouter.storage.sqlite import SQLiteStore, connect
from saferouter.translog import merkle, note
from saferouter.translog.log import SignedLog

ORIGIN = "gateway.test/startup"
SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65)


class CountingKey(ed25519.Ed25519PrivateKey):
    """A real Ed25519 key that counts what it signs."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.signed = 0

    def sign(self, data: bytes) -> bytes:
        self.signed += 1
        return self._key.sign(data)

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    def private_bytes(self, *args: Any) -> bytes:
        return self._key.private_bytes(*args)

    def private_bytes_raw(self) -> bytes:
        return self._key.private_bytes_raw()

    def __copy__(self) -> CountingKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> CountingKey:
        return self


class CountingStore:
    """The store under test, counting the log reads SignedLog makes of it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reads = 0
        self.nodes_read = 0

    async def log_size(self, log: str) -> int:
        self.reads += 1
        return await self._store.log_size(log)

    async def log_nodes(self, log: str, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        self.reads += 1
        found = await self._store.log_nodes(log, ids)
        self.nodes_read += len(found)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_head_is_signed_once_per_size(store: Store) -> None:
    key = CountingKey()
    log = SignedLog(store, name="startup", origin=ORIGIN, key=key)
    await log.append("k", {"n": 1})
    key.signed = 0
    first = await log.head()
    assert key.signed == 1
    for _ in range(5):
        assert await log.head() == first
    assert key.signed == 1  # five more GETs of an unchanged log: no signature
    await log.append("k", {"n": 2})
    key.signed = 0
    second = await log.head()
    assert (second.size, key.signed) == (2, 1)
    verifier = note.ed25519_verifier(ORIGIN, key.public_key().public_bytes_raw())
    checkpoint = note.verify_checkpoint(second.checkpoint, [verifier])
    assert (checkpoint.size, checkpoint.root_hash) == (2, second.root_hash)


async def test_proofs_around_powers_of_two_verify(store: Store) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    log = SignedLog(store, name="startup", origin=ORIGIN, key=key)
    bodies: list[bytes] = []
    for size in SIZES:
        while len(bodies) < size:
            entry = await log.append("k", {"n": len(bodies)})
            assert entry.body is not None
            bodies.append(entry.body)
        leaves = [merkle.leaf_hash(b) for b in bodies]
        head = await log.head()
        assert (head.size, head.root_hash) == (size, merkle.root_hash(leaves))
        for index in {0, size // 2, size - 1}:
            proof = await log.inclusion(index, size)
            merkle.verify_inclusion(index, size, leaves[index], proof, head.root_hash)
            rekor = await log.rekor_entry(index)
            assert rekor is not None
            assert rekor["verification"]["inclusionProof"]["hashes"] == [p.hex() for p in proof]
        for first in range(size + 1):
            proof = await log.consistency(first)
            assert proof is not None
            merkle.verify_consistency(
                first,
                size,
                [bytes.fromhex(h) for h in proof["hashes"]],
                bytes.fromhex(proof["first_root"]),
                bytes.fromhex(proof["second_root"]),
            )
            assert proof["first_root"] == merkle.root_hash(leaves[:first]).hex()
    assert await log.consistency(2, size + 1) is None
    assert await log.rekor_entry(size) is None


async def fill_log(path: Path, log: str, count: int) -> None:
    """``count`` entries appended through the one append function, in one transaction."""
    await SQLiteStore(path).close()  # the schema
    db = connect(path)
    db.execute("BEGIN IMMEDIATE")
    for _ in range(count):
        logs.append(db, log, lambda i, p: NewLogEntry(b"%d" % i, merkle.leaf_hash(b"%d" % i)), 1.0)
    db.execute("COMMIT")
    db.close()


def sqlite_steps(path: Path, read: Any) -> int:
    """How many virtual-machine steps SQLite runs for ``read(db)``: rows visited, not time."""
    db = sqlite3.connect(path)
    # the schema is read before the first statement: its steps grow with every table and
    # index any migration adds, and are not the read's
    db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.set_progress_handler(count, 1)
    read(db)
    db.close()
    return steps


@pytest.mark.parametrize("size", [1_000, 100_000])
async def test_a_head_reads_o_log_n_rows(tmp_path: Path, size: int) -> None:
    path = tmp_path / "s.db"
    await fill_log(path, "startup", size)
    store = CountingStore(SQLiteStore(path))
    log = SignedLog(store, name="startup", origin=ORIGIN, key=CountingKey())  # type: ignore[arg-type]
    head = await log.head()
    assert head.size == size
    assert store.reads == 2  # the size, then the root's nodes in one read
    assert store.nodes_read == bin(size).count("1") <= size.bit_length()
    proof = await log.inclusion(size // 3, size)
    merkle.verify_inclusion(
        size // 3, size, merkle.leaf_hash(b"%d" % (size // 3)), proof, head.root_hash
    )
    assert store.nodes_read <= 3 * size.bit_length()
    await store.close()
    # and in SQL too: the head's queries search keys. A scan of the log would visit
    # 100k rows (one step each at least); these visit a few dozen in either log.
    ids = merkle.node_ids([(0, size)])
    steps = sqlite_steps(
        path, lambda db: (logs.size(db, "startup"), logs.nodes(db, "startup", ids))
    )
    assert steps < 40 * size.bit_length(), steps
