"""The keyring: a worker's view of the provider keys its clients brought, opened once.

A key's :class:`~saferouter.storage.records.ByokKey` records come with its identity
(``KeyIdentity.byok``, from the Authenticator's cache), so learning whose key an attempt
uses costs no store read. Opening one is a sealed-box decryption (an X25519 exchange):
:class:`Keyring` does it once per sealed box and worker, and keeps what it opened in
this process's memory only — as the provider's :class:`~saferouter.config.UpstreamEndpoint`
with the client's key in it (``api_key`` stays out of every ``repr``). Nothing here
writes, logs or returns the plaintext other than inside that endpoint.

A box sealed to another X25519 key than this gateway's (``sealed_to``) is *stale*: it
was accepted by another build (another measurement holds another key pair, issue 13 §1)
and this one cannot open it. A request that would use it is refused with a 409 naming
both builds, before anything is reserved or sent: the client must verify this build and
seal the key to it again. It is not silently skipped: the client asked for its own key
to pay for that provider, and the operator's must not stand in unasked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence

import attrs

from ..config import UpstreamEndpoint
from ..errors import Conflict
from ..storage.records import ByokKey
from .sealing import Binding, SealedKeyError

# the 409's header: SDKs retry a 409 by default, and no retry can open this key
NO_RETRY = {"x-should-retry": "false"}


@attrs.frozen
class OwnKey:
    """A client's provider key, opened and ready for an attempt."""

    provider: str
    fingerprint: str  # sealing.fingerprint: how the client and the errors name it
    fallback: bool  # byok_fallback: the operator's key may serve when this one is refused
    endpoint: UpstreamEndpoint  # the provider's, with this key as ``api_key`` (no repr)


class Keyring:
    """One per worker process: opens the sealed provider keys of this gateway's clients
    with its BYOK private key (``open_sealed``) and caches them, in memory only."""

    def __init__(
        self,
        *,
        open_sealed: Callable[[bytes, Binding], str],
        public_key_hex: str,
        measurement_hex: str,
        endpoints: Mapping[str, UpstreamEndpoint],
        cache_size: int = 10_000,
    ) -> None:
        self._open_sealed = open_sealed
        self._public_key_hex = public_key_hex
        self._measurement_hex = measurement_hex
        self._endpoints = endpoints
        self._cache_size = cache_size
        # (owner, provider, sealed box) → its endpoint with the opened key; LRU. The owner
        # is in the slot: a box is opened, and served, only for the key it is bound to.
        self._opened: OrderedDict[tuple[str, str, bytes], UpstreamEndpoint] = OrderedDict()

    def own_keys(
        self, byok: Sequence[ByokKey], providers: Collection[str], *, owner: str
    ) -> dict[str, OwnKey]:
        """The client's own keys for ``providers`` (the request's candidates'), by
        provider, opened for ``owner`` (the hex SHA-256 of the secret the request
        presented). Raises :class:`~saferouter.errors.Conflict` (409) when one of them
        cannot be opened here: sealed to another build, damaged, or bound to another
        SafeRouter key or provider (a row moved in the database)."""
        return {
            record.provider: self._own(record, owner)
            for record in byok
            if record.provider in providers and record.provider in self._endpoints
        }

    def _own(self, record: ByokKey, owner: str) -> OwnKey:
        endpoint = self._endpoint(record, owner)
        return OwnKey(
            provider=record.provider,
            fingerprint=record.fingerprint,
            fallback=record.fallback,
            endpoint=endpoint,
        )

    def _endpoint(self, record: ByokKey, owner: str) -> UpstreamEndpoint:
        slot = (owner, record.provider, record.sealed_key)
        endpoint = self._opened.get(slot)
        if endpoint is not None:
            self._opened.move_to_end(slot)
            return endpoint
        name = self._endpoints[record.provider].provider.name
        if not record.sealed_for(self._public_key_hex):
            raise Conflict(
                f"Your {name} key (fingerprint {record.fingerprint}) was sealed for the "
                f"gateway build with measurement {record.measurement}; this gateway runs "
                f"build {self._measurement_hex} and cannot open it. Verify this gateway "
                f"and add the key again (saferouter byok add --provider {record.provider}, "
                "or the Keys page).",
                code="byok_key_sealed_to_other_build",
                headers=dict(NO_RETRY),
            )
        try:
            provider_key = self._open_sealed(record.sealed_key, Binding(owner, record.provider))
        except SealedKeyError:  # sealed to this key, yet altered or moved since
            raise Conflict(
                f"Your {name} key (fingerprint {record.fingerprint}) no longer opens on "
                "this gateway. Add it again (saferouter byok add, or the Keys page).",
                code="byok_key_unusable",
                headers=dict(NO_RETRY),
            ) from None
        endpoint = attrs.evolve(self._endpoints[record.provider], api_key=provider_key)
        self._opened[slot] = endpoint
        if len(self._opened) > self._cache_size:
            self._opened.popitem(last=False)
        return endpoint
