"""SQLite migration 12: a database of the single gateway before replicas (schema 11,
its logs named ``startup`` and ``receipts``) opened by this build — the logs become the
replica's own, named by the identity of the newest startup entry, and go on growing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.storage import NewReceipt, ReceiptState, logs, receipts
from saferouter.storage.migrations import MIGRATIONS, name_logs_by_identity
from saferouter.storage.sqlite import SQLiteStore
from saferouter.translog import merkle
from saferouter.translog.entry import encode_entry, entry_hash
from saferouter.translog.log import SignedLog, log_name

from .old_schemas import schema_at
from .stores import leaves

BEFORE = MIGRATIONS.index(name_logs_by_identity)  # the schema version just before it


def schema_before(path: Path) -> sqlite3.Connection:
    return schema_at(path, BEFORE)


def startup_entry(key: ed25519.Ed25519PrivateKey, previous: bytes | None) -> logs.NewLogEntry:
    identity = key.public_key().public_bytes_raw().hex()
    spec = {"identity": identity, "prev_entry_hash": entry_hash(previous) if previous else None}
    body = encode_entry("saferouter-startup", spec, key)
    return logs.NewLogEntry(body, merkle.leaf_hash(body))


def legacy_receipt(receipt_id: str) -> NewReceipt:
    body = b'{"receipt_id":"%s"}' % receipt_id.encode()
    return NewReceipt(
        receipt_id=receipt_id,
        request_id="req_" + receipt_id,
        key_id="key_1",
        body=body,
        leaf_hash=merkle.leaf_hash(body),
        signature=b"sig",
        audit_sample=False,
        created_at=1.0,
        log="receipts",  # what the gateway before replicas appended to
    )


async def test_the_logs_of_the_gateway_before_replicas_become_its_own(tmp_path: Path) -> None:
    old_key, key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    db = schema_before(tmp_path / "old.db")
    # started under an older identity, then the current one (its newest entry)
    for signer in (old_key, key, key):
        logs.append(db, "startup", lambda i, previous, k=signer: startup_entry(k, previous), 1.0)
    for n in range(3):
        receipts.save(db, legacy_receipt(f"rcpt_{n}"), 1.0)
    receipts.add_pending(db, "rcpt_pending", "req_p", "key_1", "replica/owner", 1.0)
    logs.append(db, "audit", lambda i, p: logs.NewLogEntry(b"a", merkle.leaf_hash(b"a")), 1.0)
    db.close()

    store = SQLiteStore(tmp_path / "old.db")
    try:
        assert store.schema_version() == len(MIGRATIONS)
        identity = key.public_key().public_bytes_raw()
        startup, receipt_log = log_name("startup", identity), log_name("receipts", identity)
        for legacy in ("startup", "receipts"):
            assert await store.log_size(legacy) == 0
        assert await store.log_size("audit") == 1  # another log: untouched
        assert len(await leaves(store, startup)) == 3
        assert len(await leaves(store, receipt_log)) == 3
        done = await store.receipt("rcpt_1")
        assert done is not None and (done.log, done.log_index) == (receipt_log, 1)
        assert done.body == b'{"receipt_id":"rcpt_1"}'  # read through the renamed log
        pending = await store.receipt("rcpt_pending")
        assert pending is not None and pending.state is ReceiptState.PENDING
        # the replica's log goes on: chained to the renamed entries, its tree grown
        log = SignedLog(store, name=startup, origin="gw.test/startup", key=key)
        (last,) = await store.log_entries(startup, 2, 1)
        entry = await log.append("saferouter-startup", {"identity": identity.hex()})
        assert entry.index == 3 and entry.body is not None
        assert entry_hash(last.body or b"") in entry.body.decode()
        head = await log.head()
        bodies = [e.body or b"" for e in await store.log_entries(startup, 0, 10)]
        assert head.root_hash == merkle.root_hash([merkle.leaf_hash(b) for b in bodies])
    finally:
        await store.close()


async def test_a_database_with_no_startup_entry_keeps_its_names(tmp_path: Path) -> None:
    db = schema_before(tmp_path / "old.db")
    receipts.save(db, legacy_receipt("rcpt_0"), 1.0)
    db.close()
    store = SQLiteStore(tmp_path / "old.db")
    try:
        saved = await store.receipt("rcpt_0")
        assert saved is not None and saved.log == "receipts"
        assert await store.log_size("receipts") == 1
    finally:
        await store.close()
