"""A signed, append-only log over the store: entries, checkpoints, proofs.

Entries are encoded and signed by :mod:`.entry`. Each entry's leaf is
``SHA-256(0x00 ‖ entry bytes)`` (:func:`.merkle.leaf_hash`), computed here and handed to
the store with the entry: the store keeps rows, and the tree's nodes (whose hashing is
:mod:`.merkle`'s), but knows nothing of what a leaf stands for. The log's
head is a C2SP checkpoint signed by the same key under the log's origin; entries are
served in Rekor's shape with their inclusion proof and that checkpoint.

Every read is O(log n): the store keeps the tree's nodes (``Store.log_nodes``), and a
root or proof is the hashes of a few spans of it (:mod:`.merkle`). The heads are public
and unauthenticated, so the signed head is kept for the tree size it was made at: a
flood of GETs of an unchanged log costs one size lookup each, and one signature in all.

Replicas sharing a database each sign their own logs (:func:`log_name`); only the
signer can make a head, so every head signed is published to the store
(``Store.publish_head``) for the other replicas to prove this log's entries against —
and :meth:`SignedLog.publish` does it again each heartbeat, should one have failed.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import StorageError
from ..storage import LogEntry, NewLogEntry, Store
from ..storage.replicas import log_name, log_signer
from . import merkle, note
from .entry import encode_entry, entry_hash
from .merkle import Span

log = logging.getLogger("saferouter")


@attrs.frozen
class Head:
    """A log's head: its size, root hash, and that checkpoint signed as a C2SP note."""

    size: int
    root_hash: bytes
    checkpoint: str


async def inclusion_proof(store: Store, log: str, index: int, size: int) -> list[bytes]:
    """The inclusion proof (RFC 9162 §2.1.3.1) of entry ``index`` in the tree of the
    first ``size`` entries of ``log`` — any replica's log: proofs need no key."""
    return await _tree_hashes(store, log, merkle.inclusion_spans(index, size))


async def _tree_hashes(store: Store, log: str, spans: list[Span]) -> list[bytes]:
    """The hashes of ``spans`` of the log's tree, from its stored nodes in one read."""
    nodes = await store.log_nodes(log, merkle.node_ids(spans))
    return [merkle.span_hash(span, nodes) for span in spans]


def _new_entry(body: bytes) -> NewLogEntry:
    return NewLogEntry(body=body, leaf_hash=merkle.leaf_hash(body))


class SignedLog:
    def __init__(
        self,
        store: Store,
        *,
        name: str,
        origin: str,
        key: ed25519.Ed25519PrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.origin = origin
        self._key = key
        self._clock = clock  # wall time, for when a head was published
        self.verifier = note.ed25519_verifier(origin, key.public_key().public_bytes_raw())
        self._head: Head | None = None  # the last head signed; a log only grows

    async def append(self, kind: str, spec: dict[str, Any], *, chained: bool = True) -> LogEntry:
        """Append an entry; with ``chained`` its spec names the previous entry's hash."""

        def make(index: int, previous: bytes | None) -> NewLogEntry:
            full = dict(spec)
            if chained:
                full["prev_entry_hash"] = entry_hash(previous) if previous else None
            return _new_entry(encode_entry(kind, full, self._key))

        return await self.store.log_append(self.name, make)

    async def head(self) -> Head:
        """The signed head now (signed once per tree size, and published when signed)."""
        head, _ = await self._current()
        return head

    async def publish(self) -> Head:
        """Publish the current head to the store (a heartbeat's step: it republishes
        one whose publication failed, and leaves this log's newest head behind for the
        other replicas should this one die)."""
        head, published = await self._current()
        if not published:
            await self._publish(head)
        return head

    async def _current(self) -> tuple[Head, bool]:
        """The signed head now, and whether it was just signed (and so published)."""
        size = await self.store.log_size(self.name)
        head = self._head
        if head is not None and head.size == size:
            return head, False
        (root,) = await self._hashes([(0, size)])
        text = note.Checkpoint(origin=self.origin, size=size, root_hash=root).text()
        head = Head(size, root, note.sign_note(text, self.origin, self._key))
        # a slower head() of an older size must not replace a newer one
        if self._head is None or self._head.size <= size:
            self._head = head
        try:
            await self._publish(head)
        except StorageError as exc:
            # The head is this replica's to serve all the same; the next heartbeat round
            # publishes it (publish()), so a failed write costs the others a round's wait.
            log.warning("cannot publish the %s head of size %d yet: %s", self.name, size, exc)
            return head, False
        return head, True

    async def _publish(self, head: Head) -> None:
        await self.store.publish_head(self.name, head.size, head.checkpoint, self._clock())

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        return await inclusion_proof(self.store, self.name, index, size)

    async def _hashes(self, spans: list[Span]) -> list[bytes]:
        return await _tree_hashes(self.store, self.name, spans)

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
        """The consistency proof from the tree of ``first`` entries to that of ``second``
        (default: now), with both roots; None unless 0 ≤ first ≤ second ≤ the size."""
        size = await self.store.log_size(self.name)
        second = size if second is None else second
        if not 0 <= first <= second <= size:
            return None
        first_root, second_root, *proof = await self._hashes(
            [(0, first), (0, second), *merkle.consistency_spans(first, second)]
        )
        return {
            "first": first,
            "second": second,
            "first_root": first_root.hex(),
            "second_root": second_root.hex(),
            "hashes": [h.hex() for h in proof],
        }


__all__ = ["Head", "SignedLog", "inclusion_proof", "log_name", "log_signer"]
