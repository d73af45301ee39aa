"""The Authenticator's key cache against real SQLite files: hits read no key, and every
change to a key — made by this sqlite, by another connection to the file (another worker,
the CLI), or landing between the cache's two reads — is seen on the very next call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from saferouter.errors import AuthenticationFailed, PermissionDenied
from saferouter.gateway.auth import TOUCH_INTERVAL_S, Authenticator
from saferouter.keys import generate_key
from saferouter.storage import KeyRecord
from saferouter.storage.sqlite import SQLiteStore


class CountingStore:
    """A real SQLiteStore, counting the key reads the Authenticator makes through it.
    ``before_lookup_returns`` runs between a key's read and its return: a commit by
    someone else landing at the worst moment."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.key_reads = 0
        self.before_lookup_returns: Any = None

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.key_reads += 1
        record = await self.store.key_by_hash(key_hash)
        if self.before_lookup_returns is not None:
            action, self.before_lookup_returns = self.before_lookup_returns, None
            await action()
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_000_000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "s.db")
    yield opened
    await opened.close()


@pytest.fixture
async def elsewhere(tmp_path: Path, sqlite: SQLiteStore) -> AsyncIterator[SQLiteStore]:
    """A second store on the same file: its connections are another process's."""
    other = SQLiteStore(tmp_path / "s.db")
    yield other
    await other.close()


async def new_key(store: SQLiteStore, role: str = "user") -> tuple[str, KeyRecord]:
    key = generate_key()
    record = await store.create_key(
        name="k", role=role, key_hash=key.hash, prefix=key.display_prefix
    )
    return f"Bearer {key.secret}", record


async def test_a_cached_key_is_not_read_again(sqlite: SQLiteStore) -> None:
    counting = CountingStore(sqlite)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    header, record = await new_key(sqlite)
    for _ in range(5):
        key = await auth.authenticate(header)
        assert key.id == record.id and not key.is_admin
    assert counting.key_reads == 1


async def test_a_revocation_by_another_connection_holds_on_the_next_call(
    sqlite: SQLiteStore, elsewhere: SQLiteStore
) -> None:
    counting = CountingStore(sqlite)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    header, record = await new_key(sqlite)
    await auth.authenticate(header)
    await auth.authenticate(header)
    assert counting.key_reads == 1  # cached
    await elsewhere.revoke_key(record.id)
    with pytest.raises(AuthenticationFailed) as revoked:
        await auth.authenticate(header)
    assert revoked.value.code == "revoked_api_key"
    assert counting.key_reads == 2


async def test_a_revocation_through_the_same_store_holds_on_the_next_call(
    sqlite: SQLiteStore,
) -> None:
    """The store's writes go through its own writer connections, which PRAGMA
    data_version on its reading connection counts as 'other connections'."""
    auth = Authenticator(sqlite)
    header, record = await new_key(sqlite)
    await auth.authenticate(header)
    await sqlite.revoke_key(record.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await auth.authenticate(header)


async def test_a_change_committed_between_the_two_reads_is_not_missed(
    sqlite: SQLiteStore, elsewhere: SQLiteStore
) -> None:
    """The generation is read before the key: a revocation committed after the key was
    read moves the generation past the one the stale key is cached under."""
    counting = CountingStore(sqlite)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    header, record = await new_key(sqlite)

    async def revoke() -> None:
        await elsewhere.revoke_key(record.id)

    counting.before_lookup_returns = revoke
    assert (await auth.authenticate(header)).active  # read just before the revocation
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await auth.authenticate(header)


async def test_a_key_created_elsewhere_is_found(
    sqlite: SQLiteStore, elsewhere: SQLiteStore
) -> None:
    auth = Authenticator(sqlite)
    known, _ = await new_key(sqlite)
    await auth.authenticate(known)
    secret = generate_key()
    with pytest.raises(AuthenticationFailed, match="Incorrect API key"):
        await auth.authenticate(f"Bearer {secret.secret}")
    created = await elsewhere.create_key(
        name="new", role="admin", key_hash=secret.hash, prefix=secret.display_prefix
    )
    assert (await auth.require_admin(f"Bearer {secret.secret}")).id == created.id


async def test_use_and_money_leave_the_cache_alone(sqlite: SQLiteStore) -> None:
    clock = Clock()
    counting = CountingStore(sqlite)
    auth = Authenticator(counting, wall_clock=clock)  # type: ignore[arg-type]
    header, record = await new_key(sqlite)
    await auth.authenticate(header)
    assert (await sqlite.key_by_id(record.id)).last_used_at == clock.now_s  # type: ignore[union-attr]
    clock.now_s += TOUCH_INTERVAL_S
    await auth.authenticate(header)  # touches again
    assert (await sqlite.key_by_id(record.id)).last_used_at == clock.now_s  # type: ignore[union-attr]
    await sqlite.top_up(record.id, 1_000, make_metered=False)  # an unmetered key: no change
    await auth.authenticate(header)
    assert counting.key_reads == 1


async def test_last_use_is_recorded_at_most_once_a_minute(sqlite: SQLiteStore) -> None:
    clock = Clock()
    auth = Authenticator(sqlite, wall_clock=clock)
    header, record = await new_key(sqlite)
    first = clock.now_s
    await auth.authenticate(header)
    clock.now_s += TOUCH_INTERVAL_S - 1
    await auth.authenticate(header)
    assert (await sqlite.key_by_id(record.id)).last_used_at == first  # type: ignore[union-attr]
    clock.now_s += 1
    await auth.authenticate(header)
    assert (await sqlite.key_by_id(record.id)).last_used_at == clock.now_s  # type: ignore[union-attr]


async def test_what_traffic_moves_is_not_in_what_is_returned(sqlite: SQLiteStore) -> None:
    """A balance read from the cache would be stale: the authenticated key has none."""
    auth = Authenticator(sqlite)
    header, _ = await new_key(sqlite)
    key = await auth.authenticate(header)
    assert not isinstance(key, KeyRecord)
    for moving in ("balance_micro_usd", "reserved_micro_usd", "last_used_at"):
        assert not hasattr(key, moving)


async def test_the_cache_is_bounded_and_keeps_the_recently_used(sqlite: SQLiteStore) -> None:
    counting = CountingStore(sqlite)
    auth = Authenticator(counting, cache_size=2)  # type: ignore[arg-type]
    (a, _), (b, _), (c, _) = [await new_key(sqlite) for _ in range(3)]
    for header in (a, b, a, c):  # c evicts b, the least recently used
        await auth.authenticate(header)
    assert auth.cached_keys == 2 and counting.key_reads == 3
    await auth.authenticate(a)
    assert counting.key_reads == 3
    await auth.authenticate(b)
    assert counting.key_reads == 4 and auth.cached_keys == 2


async def test_wrong_keys_are_not_cached(sqlite: SQLiteStore) -> None:
    auth = Authenticator(sqlite)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(f"Bearer {generate_key().secret}")
    assert auth.cached_keys == 0


@pytest.mark.parametrize(
    ("header", "code", "message"),
    [
        (
            None,
            "missing_api_key",
            "You didn't provide an API key. Send it in the Authorization header as "
            "'Authorization: Bearer sk-sr-…'.",
        ),
        ("Basic abc", "missing_api_key", None),
        ("Bearer short", "invalid_api_key", "Incorrect API key provided: *****."),
        (
            "Bearer sk-sr-wrongwrongwrong1234",
            "invalid_api_key",
            "Incorrect API key provided: sk-sr-********1234.",
        ),
    ],
)
async def test_missing_and_wrong_keys_are_401(
    sqlite: SQLiteStore, header: str | None, code: str, message: str | None
) -> None:
    with pytest.raises(AuthenticationFailed) as failed:
        await Authenticator(sqlite).authenticate(header)
    body = json.loads(failed.value.body())["error"]
    assert (failed.value.status, body["type"], body["code"]) == (
        401,
        "authentication_error",
        code,
    )
    if message is not None:
        assert body["message"] == message
    assert "wrongwrongwrong" not in body["message"]


async def test_revoked_and_user_keys(sqlite: SQLiteStore) -> None:
    auth = Authenticator(sqlite)
    user, user_record = await new_key(sqlite)
    admin, _ = await new_key(sqlite, role="admin")
    assert (await auth.require_admin(admin)).is_admin
    with pytest.raises(PermissionDenied, match="admin key"):
        await auth.require_admin(user)
    await sqlite.revoke_key(user_record.id)
    with pytest.raises(AuthenticationFailed) as revoked:
        await auth.require_admin(user)
    body = json.loads(revoked.value.body())["error"]
    assert (body["code"], body["message"]) == ("revoked_api_key", "This API key has been revoked.")
