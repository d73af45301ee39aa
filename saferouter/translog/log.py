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

from cryptography.hazmat.primitives.asymmetric import ed25519

from ..storage import LogEntry, NewLogEntry, Store
from . import merkle, note
from .entry import encode_entry, entry_hash


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

    async def fill(self, index: int, kind: str, spec: dict[str, Any]) -> bytes:
        body = encode_entry(kind, spec, self._key)
        await self.store.log_fill(self.name, index, _new_entry(body))
        return body

    async def checkpoint(self) -> tuple[str, list[bytes]]:
        """The signed head now, and the leaves it covers."""
        leaves = await self.store.log_leaves(self.name)
        text = note.Checkpoint(
            origin=self.origin, size=len(leaves), root_hash=merkle.root_hash(leaves)
        ).text()
        return note.sign_note(text, self.origin, self._key), leaves

    async def rekor_entry(self, index: int) -> dict[str, Any] | None:
        """The entry in Rekor's shape, with its inclusion proof in the current head."""
        signed, leaves = await self.checkpoint()
        if index >= len(leaves):
            return None
        (entry,) = await self.store.log_entries(self.name, index, 1)
        assert entry.body is not None
        return {
            "logIndex": index,
            "integratedTime": int(entry.created_at),
            "logID": self.verifier.key_id.hex(),
            "body": base64.b64encode(entry.body).decode(),
            "verification": {
                "inclusionProof": {
                    "logIndex": index,
                    "treeSize": len(leaves),
                    "rootHash": merkle.root_hash(leaves).hex(),
                    "hashes": [h.hex() for h in merkle.inclusion_proof(index, leaves)],
                    "checkpoint": signed,
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
