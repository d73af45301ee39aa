"""What a replica says about the other replicas sharing its database, and how it
serves a receipt another replica signed.

Every replica is a TEE of its own identity; a verifier connected to one can prove only
that one (its quote, its logs). What it learns here of the others is read from the
shared database — which no TEE protects — so it is served as such: each peer's
identity, when it started and was last seen, its newest startup entry as it signed it
(base64 of the entry's bytes) and its published startup head (a checkpoint it signed).
Those signatures are the peer's own and can be checked against its identity, but only
connecting to that replica proves it runs what its entries say.

Anyone who can write that database can write those rows, so they are read as untrusted
input: a row whose identity is not one (32 bytes of lower-case hex, as
``AttestationService.announce`` writes it) is left out, a head covering entries its log
lacks lists no entry, and no more than :data:`MAX_LISTED` are listed — a stray or
hostile row never takes ``/attestation``, the way to this replica's own evidence, down.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..storage import PublishedHead, Store
from ..translog.log import log_name

if TYPE_CHECKING:
    from ..state import AppState

IDENTITY_BYTES = 32  # an Ed25519 public key
# each listed replica costs two reads per /attestation: a flood of forged rows is cut here
MAX_LISTED = 64

REPLICAS_NOTE = (
    "The other replicas sharing this gateway's database, as read from that database: "
    "not attested by this replica. Verify each by connecting to it."
)


async def other_replicas(store: Store, mine: bytes) -> list[dict[str, Any]]:
    """Every replica seen in the store but this one (``mine``: its identity), first
    started first."""
    listed: list[dict[str, Any]] = []
    for replica in await store.replicas():
        identity = parse_identity(replica.identity)
        if identity is None or identity == mine:
            continue
        if len(listed) == MAX_LISTED:
            break
        log = log_name("startup", identity)
        head = await store.published_head(log)
        listed.append(
            {
                "identity": replica.identity,
                "started_at": replica.started_at,
                "last_seen": replica.last_seen,
                "latest_startup": await _newest_entry(store, log, head),
                "startup_head": None if head is None else published_json(head),
            }
        )
    return listed


def parse_identity(text: str) -> bytes | None:
    """A replica's identity as the replicas table holds it (lower-case hex of
    :data:`IDENTITY_BYTES` bytes), or None for anything else."""
    if len(text) != 2 * IDENTITY_BYTES or text != text.lower():
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


async def _newest_entry(store: Store, log: str, head: PublishedHead | None) -> Any:
    """The newest entry the published head covers (so it can be proved against it);
    None when the log has no such entry (a head no replica of that log published)."""
    if head is None or head.size <= 0:
        return None
    entries = await store.log_entries(log, head.size - 1, 1)
    if not entries or entries[0].body is None:
        return None
    return {"index": entries[0].index, "body": base64.b64encode(entries[0].body).decode()}


def published_json(head: PublishedHead) -> dict[str, Any]:
    """A published head as the API shows it."""
    return {
        "tree_size": head.size,
        "checkpoint": head.checkpoint,
        "published_at": head.published_at,
    }


async def announce_replica(state: AppState, now: float) -> None:
    """A heartbeat round's step (``heartbeat.ROUND_STEPS``): this replica is alive at
    ``now``, and its logs' current heads are published — so the newest heads of a
    replica that dies stay behind for the others to prove its receipts against."""
    if state.attestation is not None:
        await state.attestation.announce(now)
