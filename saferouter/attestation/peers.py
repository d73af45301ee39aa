"""What a replica says about the other replicas sharing its database, and how it
serves a receipt another replica signed.

Every replica is a TEE of its own identity; a verifier connected to one can prove only
that one (its quote, its logs). What it learns here of the others is read from the
shared database — which no TEE protects — so it is served as such: each peer's
identity, when it started and was last seen, its newest startup entry as it signed it
(base64 of the entry's bytes) and its published startup head (a checkpoint it signed).
Those signatures are the peer's own and can be checked against its identity, but only
connecting to that replica proves it runs what its entries say.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..storage import PublishedHead, Store
from ..translog.log import log_name

if TYPE_CHECKING:
    from ..state import AppState

REPLICAS_NOTE = (
    "The other replicas sharing this gateway's database, as read from that database: "
    "not attested by this replica. Verify each by connecting to it."
)


async def other_replicas(store: Store, mine: bytes) -> list[dict[str, Any]]:
    """Every replica seen in the store but this one (``mine``: its identity), first
    started first."""
    listed = []
    for replica in await store.replicas():
        if replica.identity == mine.hex():
            continue
        log = log_name("startup", bytes.fromhex(replica.identity))
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


async def _newest_entry(store: Store, log: str, head: PublishedHead | None) -> Any:
    """The newest entry the published head covers (so it can be proved against it)."""
    if head is None or head.size == 0:
        return None
    (entry,) = await store.log_entries(log, head.size - 1, 1)
    if entry.body is None:
        return None
    return {"index": entry.index, "body": base64.b64encode(entry.body).decode()}


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
