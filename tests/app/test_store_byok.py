"""The Store contract, BYOK keys (issue 13): a key's sealed provider keys, one per
provider, stored as sent, carried by the key's own record (``KeyIdentity.byok``), gone
with its revocation, and every change to them moving the key generation. Runs against
each store (``stores.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from saferouter.errors import KeyNotActive
from saferouter.storage import ActivityFilter, ByokKey, Settlement, Store

from .stores import entry, make_key

# bytes a text column would mangle: a NUL, invalid UTF-8, every byte value
SEALED = bytes(range(256)) + b"\x00\xff"


async def held(store: Store, key_id: str) -> list[ByokKey]:
    """The key's BYOK keys, as its record carries them ([] for no such key)."""
    record = await store.key_by_id(key_id)
    return [] if record is None else list(record.byok)


def byok(key_id: str, provider: str = "deepseek", **fields: Any) -> ByokKey:
    values: dict[str, Any] = {
        "key_id": key_id,
        "provider": provider,
        "sealed_key": SEALED,
        "sealed_to": "ab" * 32,
        "measurement": "cd" * 48,
        "fingerprint": "0123456789ab",
        "created_at": 100.0,
        "updated_at": 100.0,
    }
    return ByokKey(**{**values, **fields})


async def test_a_key_carries_its_byok_keys_by_provider(store: Store) -> None:
    key_id = await make_key(store)
    zai, deepseek = byok(key_id, "zai", fallback=True), byok(key_id, "deepseek")
    await store.put_byok_key(zai)
    await store.put_byok_key(deepseek)
    assert await held(store, key_id) == [deepseek, zai]
    record = await store.key_by_id(key_id)
    assert record is not None and record.byok == (deepseek, zai)
    assert record.byok[0].sealed_key == SEALED  # the bytes as sent
    assert record.identity().byok == (deepseek, zai)  # what the Authenticator caches
    [listed] = [k for k in await store.list_keys() if k.id == key_id]
    assert listed.byok == ()  # a listing does not read provider keys


async def test_a_key_sees_only_its_own(store: Store) -> None:
    mine, theirs, none = await make_key(store), await make_key(store), await make_key(store)
    await store.put_byok_key(byok(mine, fingerprint="aaaaaaaaaaaa"))
    await store.put_byok_key(byok(theirs, fingerprint="bbbbbbbbbbbb"))
    assert [k.fingerprint for k in await held(store, mine)] == ["aaaaaaaaaaaa"]
    assert [k.fingerprint for k in await held(store, theirs)] == ["bbbbbbbbbbbb"]
    assert await held(store, none) == []
    assert await held(store, "key_unknown") == []
    assert await store.delete_byok_key(mine, "deepseek")
    assert len(await held(store, theirs)) == 1


async def test_a_replaced_key_keeps_when_it_was_created(store: Store) -> None:
    key_id = await make_key(store)
    await store.put_byok_key(byok(key_id, created_at=100.0, updated_at=100.0))
    replacement = byok(
        key_id,
        sealed_key=b"other sealed box",
        sealed_to="ef" * 32,
        measurement="01" * 48,
        fingerprint="fedcba987654",
        fallback=True,
        created_at=200.0,
        updated_at=200.0,
    )
    stored = await store.put_byok_key(replacement)
    assert stored == attrs.evolve(replacement, created_at=100.0)
    assert await held(store, key_id) == [stored]


async def test_fallback_is_set_in_place(store: Store) -> None:
    key_id = await make_key(store)
    await store.put_byok_key(byok(key_id))
    on = await store.set_byok_fallback(key_id, "deepseek", True, now=300.0)
    assert on == byok(key_id, fallback=True, updated_at=300.0)
    assert await held(store, key_id) == [on]
    again = await store.set_byok_fallback(key_id, "deepseek", True, now=400.0)
    assert again == on  # nothing changed: not even when
    assert await store.set_byok_fallback(key_id, "zai", True, now=400.0) is None
    assert await store.set_byok_fallback("key_unknown", "deepseek", True, now=400.0) is None


async def test_delete_says_whether_there_was_one(store: Store) -> None:
    key_id = await make_key(store)
    await store.put_byok_key(byok(key_id))
    assert await store.delete_byok_key(key_id, "zai") is False
    assert await store.delete_byok_key(key_id, "deepseek") is True
    assert await store.delete_byok_key(key_id, "deepseek") is False
    assert await held(store, key_id) == []
    record = await store.key_by_id(key_id)
    assert record is not None and record.byok == ()


async def test_revoking_a_key_deletes_its_byok_keys(store: Store) -> None:
    key_id = await make_key(store)
    other = await make_key(store)
    await store.put_byok_key(byok(key_id))
    await store.put_byok_key(byok(key_id, "zai"))
    await store.put_byok_key(byok(other))
    revoked = await store.revoke_key(key_id)
    assert revoked is not None and revoked.byok == ()
    assert await held(store, key_id) == []
    assert len(await held(store, other)) == 1


@pytest.mark.parametrize("revoked", [True, False], ids=["revoked", "unknown"])
async def test_a_revoked_or_unknown_key_gets_none(store: Store, revoked: bool) -> None:
    key_id = await make_key(store) if revoked else "key_unknown"
    if revoked:
        await store.revoke_key(key_id)
    before = await store.key_generation()
    with pytest.raises(KeyNotActive):
        await store.put_byok_key(byok(key_id))
    assert await held(store, key_id) == []
    assert await store.key_generation() == before


Change = Callable[[Store, str], Awaitable[object]]

# what each does to a key holding a deepseek key, and whether that changes what it holds
CHANGES: dict[str, tuple[Change, bool]] = {
    "add another": (lambda s, k: s.put_byok_key(byok(k, "zai")), True),
    "replace": (lambda s, k: s.put_byok_key(byok(k, fingerprint="fedcba987654")), True),
    "fallback on": (lambda s, k: s.set_byok_fallback(k, "deepseek", True, now=1.0), True),
    "delete": (lambda s, k: s.delete_byok_key(k, "deepseek"), True),
    "revoke": (lambda s, k: s.revoke_key(k), True),
    "put the same again": (lambda s, k: s.put_byok_key(byok(k)), False),
    "fallback as it is": (lambda s, k: s.set_byok_fallback(k, "deepseek", False, now=1.0), False),
    "fallback of none": (lambda s, k: s.set_byok_fallback(k, "zai", True, now=1.0), False),
    "delete none": (lambda s, k: s.delete_byok_key(k, "zai"), False),
    "read": (lambda s, k: s.key_by_id(k), False),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_the_key_generation_moves_with_every_byok_change(store: Store, change: str) -> None:
    """Only a change: a cached key stays trusted through what changes nothing."""
    key_id = await make_key(store)
    await store.put_byok_key(byok(key_id))
    before = await store.key_generation()
    apply, changes = CHANGES[change]
    await apply(store, key_id)
    assert (await store.key_generation() != before) is changes
    if not changes:
        assert await held(store, key_id) == [byok(key_id)]


async def test_an_activity_entry_says_whether_byok_served(store: Store) -> None:
    key_id = await make_key(store, None)
    attempts = (
        entry("req_1", key_id, 10.0, outcome="error", status=401, byok=True),
        entry("req_1", key_id, 10.0, attempt=2),
    )
    await store.settle(
        Settlement(
            key_id=key_id,
            request_id="req_1",
            reserved_micro_usd=0,
            cost_micro_usd=0,
            tokens=1,
            attempts=attempts,
            now=10.0,
        )
    )
    found = await store.activity(ActivityFilter(key_id=key_id))
    assert sorted((e.attempt, e.byok) for e in found) == [(1, True), (2, False)]
