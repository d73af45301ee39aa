"""The Store contract, replicas sharing a store: each log's published head (it only
grows) and the replicas seen (first sight kept). Runs against each store (``stores.py``);
and SignedLog publishing every head it signs, and again when asked (a heartbeat)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.errors import StorageError
from saferouter.storage import PublishedHead, Replica, Store
from saferouter.translog import note
from saferouter.translog.log import SignedLog, log_name

T0 = 1_800_000_000.0
LOG = "receipts/" + "aa" * 32


async def test_a_published_head_only_grows(store: Store) -> None:
    assert await store.published_head(LOG) is None
    await store.publish_head(LOG, 3, "cp3", T0)
    assert await store.published_head(LOG) == PublishedHead(LOG, 3, "cp3", T0)
    # a slower publisher's older (or the same) size never replaces it
    await store.publish_head(LOG, 2, "cp2", T0 + 1)
    await store.publish_head(LOG, 3, "cp3 again", T0 + 2)
    assert await store.published_head(LOG) == PublishedHead(LOG, 3, "cp3", T0)
    await store.publish_head(LOG, 5, "cp5", T0 + 3)
    assert await store.published_head(LOG) == PublishedHead(LOG, 5, "cp5", T0 + 3)
    assert await store.published_head("receipts/" + "bb" * 32) is None  # per log


async def test_replicas_are_listed_by_first_sight_which_is_kept(store: Store) -> None:
    assert await store.replicas() == []
    await store.see_replica("bb" * 32, T0 + 5)
    await store.see_replica("aa" * 32, T0)
    await store.see_replica("bb" * 32, T0 + 9)
    await store.see_replica("aa" * 32, T0 + 7)
    assert await store.replicas() == [
        Replica("aa" * 32, started_at=T0, last_seen=T0 + 7),
        Replica("bb" * 32, started_at=T0 + 5, last_seen=T0 + 9),
    ]


async def test_a_signed_log_publishes_each_head_it_signs(store: Store) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = log_name("startup", key.public_key().public_bytes_raw())
    assert name == "startup/" + key.public_key().public_bytes_raw().hex()
    log = SignedLog(store, name=name, origin="gw.test/startup", key=key, clock=lambda: T0)
    await log.append("k", {"n": 0})
    await log.append("k", {"n": 1})
    assert await store.published_head(name) is None  # appending signs no head
    head = await log.head()
    published = await store.published_head(name)
    assert published == PublishedHead(name, 2, head.checkpoint, T0)
    verifier = note.ed25519_verifier("gw.test/startup", key.public_key().public_bytes_raw())
    assert note.verify_checkpoint(published.checkpoint, [verifier]).size == 2
    await log.append("k", {"n": 2})
    assert (await log.publish()).size == 3  # a heartbeat round: signs and publishes
    published = await store.published_head(name)
    assert published is not None and published.size == 3


class RefusingPublish:
    """The store under test, refusing the first ``refusals`` head publications (the
    database briefly away)."""

    def __init__(self, store: Store, refusals: int) -> None:
        self._store = store
        self.refusals = refusals

    async def publish_head(self, log: str, size: int, checkpoint: str, now: float) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StorageError("the database is away")
        await self._store.publish_head(log, size, checkpoint, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_head_not_published_when_signed_is_by_the_next_publish(store: Store) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    refusing = RefusingPublish(store, refusals=1)
    log = SignedLog(refusing, name=LOG, origin="gw.test/receipts", key=key)  # type: ignore[arg-type]
    await log.append("k", {"n": 0})
    head = await log.head()  # served all the same
    assert head.size == 1 and await store.published_head(LOG) is None
    assert await log.head() == head  # signed once: a GET does not publish it again …
    assert await store.published_head(LOG) is None
    await log.publish()  # … the heartbeat's round does
    published = await store.published_head(LOG)
    assert published is not None and published.checkpoint == head.checkpoint
