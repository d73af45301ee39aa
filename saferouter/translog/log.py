"""A signed, append-only log over the store: entries, checkpoints, proofs.

Each entry is canonical JSON (RFC 8785) shaped like a Rekor entry of SafeRouter's own
kind — ``{"apiVersion": "0.0.1", "kind": …, "spec": {…}, "signature": <base64>}`` —
where the Ed25519 signature covers the canonical JSON of the entry without
``signature``. Its leaf is ``SHA-256(0x00 ‖ entry bytes)``. The log's head is a C2SP
checkpoint signed by the same key under the log's origin; entries are served in
Rekor's shape with their inclusion proof and that checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..attestation.identity import public_bytes
from ..canonical import canonical_json
from ..storage import LogEntry, Store
from . import merkle, note

API_VERSION = "0.0.1"


def encode_entry(kind: str, spec: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    unsigned = {"apiVersion": API_VERSION, "kind": kind, "spec": spec}
    signature = key.sign(canonical_json(unsigned))
    return canonical_json({**unsigned, "signature": base64.b64encode(signature).decode()})


def entry_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class SignedLog:
    def __init__(
        self, store: Store, *, name: str, origin: str, key: ed25519.Ed25519PrivateKey
    ) -> None:
        self.store = store
        self.name = name
        self.origin = origin
        self._key = key
        self.verifier = note.ed25519_verifier(origin, public_bytes(key))

    async def append(self, kind: str, spec: dict[str, Any], *, chained: bool = True) -> LogEntry:
        """Append an entry; with ``chained`` its spec names the previous entry's hash."""

        def make(index: int, previous: bytes | None) -> bytes:
            full = dict(spec)
            if chained:
                full["prev_entry_hash"] = entry_hash(previous) if previous else None
            return encode_entry(kind, full, self._key)

        return await self.store.log_append(self.name, make)

    async def fill(self, index: int, kind: str, spec: dict[str, Any]) -> bytes:
        body = encode_entry(kind, spec, self._key)
        await self.store.log_fill(self.name, index, body)
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


def decode_entry(body: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(body)
    return value


def verify_entry(body: bytes, public_key: bytes) -> dict[str, Any]:
    """The entry, once its signature verifies with ``public_key``. Raises NoteError."""
    entry = decode_entry(body)
    signature = base64.b64decode(entry.pop("signature", ""))
    if canonical_json({**entry, "signature": base64.b64encode(signature).decode()}) != body:
        raise note.NoteError("the entry is not in canonical form")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, canonical_json(entry)
        )
    except (InvalidSignature, ValueError) as exc:
        raise note.NoteError("the entry's signature does not verify") from exc
    return entry
