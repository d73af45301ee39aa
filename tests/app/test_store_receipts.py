"""The Store contract, receipts: pending from admission, saved once into the receipts
log (alone or in the settlement's transaction), lost on recovery, audit samples listed
by key. Runs against each store (``stores.py``)."""

from __future__ import annotations

import attrs
import pytest

from saferouter.errors import StorageError
from saferouter.storage import AdmissionRequest, NewLogEntry, NewReceipt, ReceiptState, Store

from .stores import OpenStore, leaves, make_key, settlement

T0 = 1_800_000_000.0
LOG = "receipts/" + "aa" * 32  # the receipt log of the replica signing these


def admission(key: str, request_id: str, receipt_id: str, reserve: int = 0) -> AdmissionRequest:
    return AdmissionRequest(
        key_id=key, request_id=request_id, reserve_micro_usd=reserve, now=T0, receipt_id=receipt_id
    )


def signed(
    key: str, request_id: str, receipt_id: str, *, sample: bool = False, log: str = LOG
) -> NewReceipt:
    body = b'{"receipt_id":"%s"}' % receipt_id.encode()
    return NewReceipt(
        receipt_id=receipt_id,
        request_id=request_id,
        key_id=key,
        body=body,
        leaf_hash=b"leaf:" + body,
        signature=b"sig:" + receipt_id.encode(),
        audit_sample=sample,
        created_at=T0,
        log=log,
    )


async def test_a_receipt_is_pending_from_admission_until_saved_once(store: Store) -> None:
    key = await make_key(store)
    assert (await store.admit(admission(key, "r1", "rcpt_1"))).admitted
    pending = await store.receipt("rcpt_1")
    assert pending is not None and pending.state is ReceiptState.PENDING
    assert (pending.key_id, pending.request_id, pending.body, pending.log_index) == (
        key,
        "r1",
        None,
        None,
    )
    first = signed(key, "r0", "rcpt_0")
    await store.log_append(LOG, lambda i, p: NewLogEntry(first.body, first.leaf_hash))
    assert await store.save_receipt(signed(key, "r1", "rcpt_1")) == 1
    assert await store.save_receipt(signed(key, "r1", "rcpt_1")) == 1  # once: no new leaf
    done = await store.receipt("rcpt_1")
    assert done is not None and done.state is ReceiptState.DONE
    assert (done.log_index, done.body, done.signature) == (
        1,
        b'{"receipt_id":"rcpt_1"}',
        b"sig:rcpt_1",
    )
    assert (await leaves(store, LOG))[1] == b'leaf:{"receipt_id":"rcpt_1"}'
    assert len(await leaves(store, LOG)) == 2
    assert await store.receipt("rcpt_unknown") is None


async def test_a_refused_request_has_no_receipt(store: Store) -> None:
    key = await make_key(store, credits=10)
    refused = await store.admit(admission(key, "r1", "rcpt_1", reserve=500))
    assert not refused.admitted
    assert await store.receipt("rcpt_1") is None


async def test_a_settlement_carries_its_receipt_in_one_write(store: Store) -> None:
    key = await make_key(store, credits=1000)
    await store.admit(admission(key, "r1", "rcpt_1", reserve=100))
    with_receipt = attrs.evolve(
        settlement(key, "r1", T0, reserved=100, cost=40), receipt=signed(key, "r1", "rcpt_1")
    )
    await store.settle(with_receipt)
    done = await store.receipt("rcpt_1")
    assert done is not None and (done.state, done.log_index) == (ReceiptState.DONE, 0)
    assert (await store.books(key)).spent_micro_usd == 40
    # a settlement that fails (no such key) writes its receipt no more than its charge
    broken = attrs.evolve(settlement("key_gone", "r2", T0), receipt=signed(key, "r2", "rcpt_2"))
    with pytest.raises(StorageError):
        await store.settle(broken)
    assert await store.receipt("rcpt_2") is None
    assert len(await leaves(store, LOG)) == 1


async def test_recovery_marks_pending_receipts_lost(open_store: OpenStore) -> None:
    store, survivor = open_store(), open_store()  # (a sweep never releases its own)
    key = await make_key(store, credits=1000)
    await store.admit(admission(key, "r1", "rcpt_1", reserve=100))
    await store.admit(admission(key, "r2", "rcpt_2"))
    await store.save_receipt(signed(key, "r2", "rcpt_2"))
    assert await survivor.recover() == 1  # the reservation released
    lost, done = await store.receipt("rcpt_1"), await store.receipt("rcpt_2")
    assert lost is not None and lost.state is ReceiptState.LOST
    assert done is not None and done.state is ReceiptState.DONE


async def test_audit_samples_are_the_sampled_receipts_by_key(store: Store) -> None:
    a, b = await make_key(store), await make_key(store)
    for n, (key, sample) in enumerate([(a, True), (b, True), (a, False), (a, True)]):
        await store.save_receipt(signed(key, f"r{n}", f"rcpt_{n}", sample=sample))
    everyone = await store.sampled_receipts(LOG, 0, 10)
    assert [(r.log_index, r.receipt_id) for r in everyone] == [
        (0, "rcpt_0"),
        (1, "rcpt_1"),
        (3, "rcpt_3"),
    ]
    assert [r.receipt_id for r in await store.sampled_receipts(LOG, 0, 10, key_id=a)] == [
        "rcpt_0",
        "rcpt_3",
    ]
    assert [r.receipt_id for r in await store.sampled_receipts(LOG, 1, 1)] == ["rcpt_1"]
    assert everyone[2].body == b'{"receipt_id":"rcpt_3"}'


async def test_each_replica_saves_into_its_own_receipt_log(store: Store) -> None:
    key = await make_key(store)
    other = "receipts/" + "bb" * 32
    await store.admit(admission(key, "r1", "rcpt_1"))
    assert await store.save_receipt(signed(key, "r0", "rcpt_0")) == 0
    # another replica's receipt is entry 0 of its own log, not entry 1 of this one's
    assert await store.save_receipt(signed(key, "r1", "rcpt_1", log=other)) == 0
    mine, theirs = await store.receipt("rcpt_0"), await store.receipt("rcpt_1")
    assert mine is not None and (mine.log, mine.log_index) == (LOG, 0)
    assert theirs is not None and (theirs.log, theirs.log_index) == (other, 0)
    assert theirs.body == b'{"receipt_id":"rcpt_1"}'  # read from its own log's entry
    assert await leaves(store, LOG) == [b'leaf:{"receipt_id":"rcpt_0"}']
    assert await leaves(store, other) == [b'leaf:{"receipt_id":"rcpt_1"}']


async def test_audit_samples_are_read_one_receipt_log_at_a_time(store: Store) -> None:
    """Each replica's receipt log numbers its entries from 0: samples are asked for one
    log, and ``start`` is an index in it."""
    key = await make_key(store)
    other = "receipts/" + "bb" * 32
    for n, log in enumerate([LOG, other, LOG, other, other]):
        await store.save_receipt(signed(key, f"r{n}", f"rcpt_{n}", sample=True, log=log))

    async def page(log: str, start: int) -> list[tuple[str, int | None, str]]:
        return [
            (r.log, r.log_index, r.receipt_id) for r in await store.sampled_receipts(log, start, 10)
        ]

    assert await page(LOG, 0) == [(LOG, 0, "rcpt_0"), (LOG, 1, "rcpt_2")]
    assert await page(other, 1) == [(other, 1, "rcpt_3"), (other, 2, "rcpt_4")]
    assert await page("receipts/" + "cc" * 32, 0) == []
