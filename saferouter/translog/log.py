"""A signed, append-only log over the store: entries, checkpoints, proofs.

Entries are encoded and signed by :mod:`.entry`. Each entry's leaf is
``SHA-256(0x00 ‖ entry bytes)`` (:func:`.merkle.leaf_hash`), computed here and handed to
the store with the entry: the store keeps rows and knows nothing of trees. The log's
head is a C2SP checkpoint signed by the same key under the log's origin; entries are
served in Rekor's shape with their inclusion proof and that checkpoint.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..storage import LogEntry, NewLogEntry, Store
from . import merkle, note
from .entry import encode_entry, entry_hash


@attrs.frozen
class Head:
    """A log's head: its size, root hash, and that checkpoint signed as a C2SP note."""

    size: int
    root_hash: bytes
    checkpoint: str


def _new_entry(body: bytes) -> NewLogEntry:
    return NewLogEntry(body=body, leaf_hash=merkle.leaf_hash(body))


class SignedLog:
    def __init__(
        self, store: Store, *, name: str, origin: str, key: ed25519.Ed25519PrivateKey
    ) -> None:
        self.store = store
        self.name = name
        self.origin = origin
        self._key = key
        self.verifier = note.ed25519_verifier(origin, key.public_key().public_bytes_raw())

    async def append(self, kind: str, spec: dict[str, Any], *, chained: bool = True) -> LogEntry:
        """Append an entry; with ``chained`` its spec names the previous entry's hash."""

        def make(index: int, previous: bytes | None) -> NewLogEntry:
            full = dict(spec)
            if chained:
                full["prev_entry_hash"] = entry_hash(previous) if previous else None
            return _new_entry(encode_entry(kind, full, self._key))

        return await self.store.log_append(self.name, make)

    async def head(self) -> Head:
        """The signed head now."""
        leaves = await self.store.log_leaves(self.name)
        root = merkle.root_hash(leaves)
        text = note.Checkpoint(origin=self.origin, size=len(leaves), root_hash=root).text()
        return Head(len(leaves), root, note.sign_note(text, self.origin, self._key))

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        leaves = await self.store.log_leaves(self.name)
        return merkle.inclusion_proof(index, leaves[:size])

    async def rekor_entry(self, index: int) -> dict[str, Any] | None:
        """The entry in Rekor's shape, with its inclusion proof in the current head."""
        head = await self.head()
        if index >= head.size:
            return None
        (entry,) = await self.store.log_entries(self.name, index, 1)
        assert entry.body is not None
        proof = await self.inclusion(index, head.size)
        return {
            "logIndex": index,
            "integratedTime": int(entry.created_at),
            "logID": self.verifier.key_id.hex(),
            "body": base64.b64encode(entry.body).decode(),
            "verification": {
                "inclusionProof": {
                    "logIndex": index,
                    "treeSize": head.size,
                    "rootHash": head.root_hash.hex(),
                    "hashes": [h.hex() for h in proof],
                    "checkpoint": head.checkpoint,
                }
            },
        }

    async def consistency(self, first: int, second: int | None = None) -> dict[str, Any] | None:
        leaves = await self.store.log_leaves(self.name)
        second = len(leaves) if second is None else second
        if not 0 <= first <= second <= len(leaves):
            return None
        return {
            "first": first,
            "second": second,
            "first_root": merkle.root_hash(leaves[:first]).hex(),
            "second_root": merkle.root_hash(leaves[:second]).hex(),
            "hashes": [h.hex() for h in merkle.consistency_proof(first, leaves[:second])],
        }
