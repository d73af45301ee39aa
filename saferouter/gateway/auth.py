"""Bearer-key authentication from a per-worker cache that still sees every revocation.

Looking a key up in the store on every request is what made a revocation hold from the
next request on, in every worker and whatever made it (an admin over HTTP, the CLI).
:class:`Authenticator` keeps that guarantee and drops the lookup: it caches keys by hash,
and trusts the cache only while the store's key generation
(:meth:`~saferouter.storage.Store.key_generation`) is the one it was filled under. Any
change to any key, by any process, moves the generation and empties the cache, so the
next request reads the store again. On SQLite, asking the generation is one
``PRAGMA data_version`` while nothing was committed: no table read.

What is cached is a :class:`~saferouter.storage.KeyIdentity`, the fields the generation
covers; balance, reservations and last use move with traffic without moving the
generation, so they are not in what this returns and cannot be read stale.

Wrong keys are not cached: a client spraying guesses would otherwise evict the real
keys, and a key created elsewhere moves the generation anyway.

Framework-free: the request pipeline calls it with the ``Authorization`` header's value,
or the ``x-api-key`` header's (Anthropic's clients send that) as one
(:func:`presented_key`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..errors import AuthenticationFailed, PermissionDenied
from ..keys import hash_key, parse_bearer
from ..storage import KeyIdentity, Store

TOUCH_INTERVAL_S = 60.0  # record "last used" at most this often per key and worker


class Authenticator:
    """One per worker process: authenticates bearer keys against ``store``."""

    def __init__(
        self,
        store: Store,
        *,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._store = store
        self._wall_clock = wall_clock
        self._cache_size = cache_size
        self._cache: OrderedDict[str, KeyIdentity] = OrderedDict()  # key hash → key, LRU
        self._generation: int | None = None  # the key generation the cache was filled under
        self._last_touch_s: dict[str, float] = {}  # key id → last recorded use (wall clock)

    @property
    def cached_keys(self) -> int:
        """How many keys the cache holds now."""
        return len(self._cache)

    async def authenticate(self, authorization: str | None) -> KeyIdentity:
        """The active key named by an ``Authorization: Bearer …`` header value, or
        :class:`~saferouter.errors.AuthenticationFailed` (401): ``missing_api_key``,
        a wrong key (shown redacted), or ``revoked_api_key``."""
        secret = parse_bearer(authorization)
        if secret is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it in the Authorization header as "
                "'Authorization: Bearer sk-sr-…'.",
                code="missing_api_key",
            )
        key = await self._key_by_hash(hash_key(secret))
        if key is None:
            raise AuthenticationFailed(f"Incorrect API key provided: {_redact(secret)}.")
        if not key.active:
            raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
        await self._touch(key.id)
        return key

    async def require_admin(self, authorization: str | None) -> KeyIdentity:
        """:meth:`authenticate`, then :class:`~saferouter.errors.PermissionDenied` (403)
        unless the key is an admin key."""
        key = await self.authenticate(authorization)
        if not key.is_admin:
            raise PermissionDenied("This endpoint needs an admin key.")
        return key

    async def _key_by_hash(self, key_hash: str) -> KeyIdentity | None:
        # (1) The generation first: a key read after it is at least as new as it, so a
        # change committed in between moves the generation past what the cache records,
        # and the next call starts over. (Read the other way round, a key read just
        # before a revocation could be cached under the revocation's generation.)
        generation = await self._store.key_generation()
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation
        # (2) A hit: the key as it is in the store now.
        key = self._cache.get(key_hash)
        if key is not None:
            self._cache.move_to_end(key_hash)
            return key
        # (3) A miss: read it, and keep it unless it does not exist.
        record = await self._store.key_by_hash(key_hash)
        if record is None:
            return None
        key = record.identity()
        self._cache[key_hash] = key
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key

    async def _touch(self, key_id: str) -> None:
        """Record the key's use, at most every TOUCH_INTERVAL_S per key in this worker:
        a write per request would cost more than the lookup it records."""
        now_s = self._wall_clock()
        if now_s - self._last_touch_s.get(key_id, float("-inf")) >= TOUCH_INTERVAL_S:
            self._last_touch_s[key_id] = now_s
            await self._store.touch_key(key_id, now_s)


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The ``Authorization`` value a request presents its key in: the header itself, or
    ``x-api-key``'s key as a bearer one. Both sent and naming different keys: 401 (which
    one the client meant is not ours to guess)."""
    token = x_api_key.strip() if x_api_key else ""
    if not token:
        return authorization
    if authorization is None:
        return "Bearer " + token
    if parse_bearer(authorization) != token:
        raise AuthenticationFailed(
            "The Authorization and x-api-key headers name different API keys. Send one.",
            code="conflicting_api_keys",
        )
    return authorization


def _redact(secret: str) -> str:
    """What OpenAI shows of a wrong key: its start and end, never the whole."""
    if len(secret) <= 12:
        return "*" * len(secret)
    return f"{secret[:6]}{'*' * 8}{secret[-4:]}"
