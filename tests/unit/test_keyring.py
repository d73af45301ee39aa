"""The keyring (issue 13 §3): each sealed provider key opened once per worker, with this
build's BYOK key only; a key sealed to another build, or damaged, is a 409 that names
what to do — never a silent switch to the operator's key."""

from __future__ import annotations

from functools import partial

import attrs
import nacl.public
import pytest

from saferouter.byok import sealing
from saferouter.byok.keyring import Keyring
from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.config import endpoints_from_env
from saferouter.errors import Conflict
from saferouter.storage import ByokKey

ENDPOINTS = endpoints_from_env(load_catalog(DEFAULT_CATALOG_PATH), {"ZAI_API_KEY": "sk-op-zai"})
THIS_BUILD, OTHER_BUILD = "11" * 48, "22" * 48
GATEWAY = nacl.public.PrivateKey.generate()


OWNER = "0f" * 32  # the hash of the SafeRouter key's secret the boxes are bound to


def sealed(
    provider: str, secret: str, to: nacl.public.PrivateKey = GATEWAY, owner: str = OWNER
) -> ByokKey:
    public = bytes(to.public_key)
    return ByokKey(
        key_id="key_1",
        provider=provider,
        sealed_key=sealing.seal(public, secret, sealing.Binding(owner, provider)),
        sealed_to=public.hex(),
        measurement=THIS_BUILD if to is GATEWAY else OTHER_BUILD,
        fingerprint=sealing.fingerprint(secret),
    )


class CountingOpener:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, box: bytes, binding: sealing.Binding) -> str:
        self.calls += 1
        return sealing.open_sealed(GATEWAY, box, binding)


def keyring(opener: object = None, **options: int) -> Keyring:
    return Keyring(
        open_sealed=opener or partial(sealing.open_sealed, GATEWAY),  # type: ignore[arg-type]
        public_key_hex=bytes(GATEWAY.public_key).hex(),
        measurement_hex=THIS_BUILD,
        endpoints=ENDPOINTS,
        **options,
    )


def test_an_own_key_is_the_providers_endpoint_with_the_clients_key() -> None:
    record = sealed("zai", "sk-own-zai-0123456789")
    [(provider, own)] = keyring().own_keys([record], {"zai", "deepseek"}, owner=OWNER).items()
    assert provider == own.provider == "zai"
    assert own.endpoint.api_key == "sk-own-zai-0123456789"
    assert own.endpoint.base_url == ENDPOINTS["zai"].base_url
    assert own.fingerprint == record.fingerprint and own.fallback is False
    assert "sk-own-zai" not in repr(own)  # the key is in no repr, as the operator's


def test_each_sealed_key_is_opened_once_per_worker() -> None:
    opener = CountingOpener()
    ring = keyring(opener)
    record = sealed("zai", "sk-own-zai-0123456789")
    for _ in range(5):
        ring.own_keys([record], {"zai"}, owner=OWNER)
    assert opener.calls == 1
    ring.own_keys(
        [sealed("zai", "sk-own-zai-0123456789")], {"zai"}, owner=OWNER
    )  # a new box: opened
    assert opener.calls == 2


def test_the_cache_is_bounded() -> None:
    opener = CountingOpener()
    ring = keyring(opener, cache_size=2)
    first, second, third = (sealed("zai", f"sk-own-zai-{i:012d}") for i in range(3))
    for record in (first, second, third, second, first):
        ring.own_keys([record], {"zai"}, owner=OWNER)
    assert opener.calls == 4  # `first` was evicted by `third`, `second` was not


def test_only_the_candidates_providers_are_opened_or_checked() -> None:
    stale = sealed("deepseek", "sk-own-ds-0123456789", to=nacl.public.PrivateKey.generate())
    assert keyring().own_keys([stale], {"zai"}, owner=OWNER) == {}
    gone = sealed("retired-provider", "sk-own-x-0123456789")
    assert keyring().own_keys([gone], {"retired-provider"}, owner=OWNER) == {}


def test_a_key_sealed_to_another_build_is_a_409_naming_both_builds() -> None:
    stale = sealed("zai", "sk-own-zai-0123456789", to=nacl.public.PrivateKey.generate())
    with pytest.raises(Conflict) as raised:
        keyring().own_keys([stale], {"zai"}, owner=OWNER)
    error = raised.value
    assert (error.status, error.code) == (409, "byok_key_sealed_to_other_build")
    assert error.headers == {"x-should-retry": "false"}
    assert OTHER_BUILD in error.message and THIS_BUILD in error.message
    assert stale.fingerprint in error.message and "byok add" in error.message


def test_a_damaged_box_sealed_to_this_build_is_a_409_too() -> None:
    record = sealed("zai", "sk-own-zai-0123456789")
    box = bytearray(record.sealed_key)
    box[-1] ^= 1
    damaged = attrs.evolve(record, sealed_key=bytes(box))
    with pytest.raises(Conflict) as raised:
        keyring().own_keys([damaged], {"zai"}, owner=OWNER)
    assert raised.value.code == "byok_key_unusable"


def test_a_box_opens_only_for_the_key_it_is_bound_to() -> None:
    """A row copied to another key (or another provider) in the database does not serve:
    the box names its owner, and the request's secret must hash to it."""
    record = sealed("zai", "sk-own-zai-0123456789")
    ring = keyring()
    assert ring.own_keys([record], {"zai"}, owner=OWNER)  # opened, and cached for OWNER
    for owner, row in (
        ("1e" * 32, record),  # another SafeRouter key presents the same row
        (OWNER, attrs.evolve(record, provider="deepseek")),  # moved to another provider
    ):
        with pytest.raises(Conflict) as raised:
            ring.own_keys([row], {"zai", "deepseek"}, owner=owner)
        assert raised.value.code == "byok_key_unusable"
