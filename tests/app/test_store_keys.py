"""The Store contract, keys: creation, lookup by hash, updates, revocation (never of the
last admin key when asked not to), last use. Runs against each store (``stores.py``)."""

from __future__ import annotations

import pytest

from saferouter.errors import LastAdminKey, StorageError
from saferouter.storage import ActivityFilter, KeyRole, RateLimits, Settlement, Store

from .stores import entry, make_key


async def test_a_key_is_found_by_its_hash_and_id(store: Store) -> None:
    assert await store.count_keys() == 0
    created = await store.create_key(
        name="alice",
        role="admin",
        key_hash="hash-a",
        prefix="sk-sr-abcd",
        credits_micro_usd=250,
        rpm_limit=10,
        tpm_limit=1000,
    )
    assert created.id.startswith("key_")
    assert (created.name, created.role, created.prefix) == ("alice", "admin", "sk-sr-abcd")
    assert created.is_admin and created.active and created.metered
    assert (created.balance_micro_usd, created.reserved_micro_usd) == (250, 0)
    assert (created.rpm_limit, created.tpm_limit) == (10, 1000)
    assert created.last_used_at is None and created.revoked_at is None
    assert await store.key_by_hash("hash-a") == created
    assert await store.key_by_id(created.id) == created
    assert await store.key_by_hash("hash-b") is None
    assert await store.key_by_id("key_none") is None
    assert await store.count_keys() == 1


async def test_keys_are_listed_oldest_first_revoked_included(store: Store) -> None:
    ids = [await make_key(store) for _ in range(4)]
    await store.revoke_key(ids[1])
    listed = await store.list_keys()
    assert {k.id for k in listed} == set(ids)
    assert listed == sorted(listed, key=lambda k: (k.created_at, k.id))
    assert [k.id for k in listed if not k.active] == [ids[1]]


async def test_a_hash_is_one_key_and_a_role_is_admin_or_user(store: Store) -> None:
    await store.create_key(name="a", role="user", key_hash="same", prefix="p")
    with pytest.raises(StorageError):
        await store.create_key(name="b", role="user", key_hash="same", prefix="p")
    with pytest.raises(StorageError):
        await store.create_key(name="c", role="root", key_hash="other", prefix="p")
    assert await store.count_keys() == 1


async def test_update_renames_and_replaces_both_limits(store: Store) -> None:
    key = await make_key(store, rpm=5, tpm=50)
    renamed = await store.update_key(key, name="new name")
    assert renamed is not None and (renamed.name, renamed.rpm_limit, renamed.tpm_limit) == (
        "new name",
        5,
        50,
    )
    limited = await store.update_key(key, limits=RateLimits(requests_per_minute=7))
    assert limited is not None and (limited.rpm_limit, limited.tpm_limit) == (7, None)
    assert await store.key_by_id(key) == limited
    assert await store.update_key("key_none", name="x") is None


async def test_revoking_is_idempotent(store: Store) -> None:
    key = await make_key(store)
    revoked = await store.revoke_key(key)
    assert revoked is not None and not revoked.active and revoked.revoked_at is not None
    again = await store.revoke_key(key)
    assert again == revoked  # the first revocation's time stays
    assert await store.revoke_key("key_none") is None


async def test_the_last_active_admin_key_is_kept_when_asked(store: Store) -> None:
    first = await make_key(store, role="admin")
    second = await make_key(store, role="admin")
    user = await make_key(store)
    assert (await store.revoke_key(user, keep_an_admin=True)) is not None
    await store.revoke_key(first, keep_an_admin=True)
    with pytest.raises(LastAdminKey):
        await store.revoke_key(second, keep_an_admin=True)
    kept = await store.key_by_id(second)
    assert kept is not None and kept.active
    # a revoked admin key is no longer the one to keep, and without the flag any goes
    assert await store.revoke_key(first, keep_an_admin=True) is not None
    assert (await store.revoke_key(second)) is not None


async def test_touch_records_the_last_use(store: Store) -> None:
    key = await make_key(store)
    await store.touch_key(key, 1234.5)
    record = await store.key_by_id(key)
    assert record is not None and record.last_used_at == 1234.5
    await store.touch_key("key_none", 1.0)  # no such key: nothing to do


async def test_a_closed_store_does_not_answer(store: Store) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(StorageError):
        await store.ping()


async def test_odd_text_reads_back_as_written(store: Store) -> None:
    """Text of any script, direction marks, separators, the last code points, SQL and
    placeholder look-alikes: kept and found as written, by every store alike (NUL,
    which PostgreSQL cannot hold, is refused before any store: client_input)."""
    for n, text in enumerate(
        ["é\u0301 ✓ 🙂", "\u202eevil", "\u2028\uffff\U0010ffff", "'; --", "%s ? $1"]
    ):
        record = await store.create_key(name=text, role=KeyRole.USER, key_hash=f"h{n}", prefix="p")
        assert (await store.key_by_id(record.id)) == record and record.name == text
        await store.settle(
            Settlement(
                key_id=record.id,
                request_id=f"r{n}",
                reserved_micro_usd=0,
                cost_micro_usd=0,
                tokens=0,
                attempts=(entry(f"r{n}", record.id, 1.0, requested_model=text, served_model=text),),
                now=1.0,
            )
        )
        (found,) = await store.activity(ActivityFilter(model=text))
        assert (found.requested_model, found.served_model) == (text, text)
