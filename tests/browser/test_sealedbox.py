"""The Keys page's sealing (saferouter/web/assets/sealedbox.js and the vendored code under
it) in real Chromium, opened by the gateway's own Python: the same sealed-box format on both
sides."""

from __future__ import annotations

import base64
import string

import nacl.public
import pytest

from saferouter.byok import sealing
from saferouter.keys import hash_key

from .conftest import Watched

SEAL = """async ([publicKey, providerKey, secret, provider]) => {
  const box = await import("/assets/sealedbox.js");
  try {
    const owner = await box.ownerOf(secret);
    const sealed = box.seal(box.publicKeyFromHex(publicKey), providerKey, { owner, provider });
    return { sealed: box.base64(sealed), fingerprint: await box.fingerprint(providerKey) };
  } catch (error) { return { error: error.message }; }
}"""
SECRET = "sk-sr-the-uploading-key"  # the SafeRouter key a box is bound to
BINDING = sealing.Binding(hash_key(SECRET), "deepseek")

KEYS = [
    "k" * sealing.PROVIDER_KEY_MIN_BYTES,
    "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    string.punctuation + string.ascii_letters + string.digits,  # every character a key may hold
    "x" * sealing.PROVIDER_KEY_MAX_BYTES,
]


def seal_in_chromium(
    page: Watched, public_key: str, provider_key: str, provider: str = BINDING.provider
) -> dict[str, str]:
    result: dict[str, str] = page.page.evaluate(SEAL, [public_key, provider_key, SECRET, provider])
    return result


@pytest.mark.parametrize("provider_key", KEYS, ids=["shortest", "typical", "charset", "longest"])
def test_a_key_sealed_in_chromium_opens_with_open_sealed(page: Watched, provider_key: str) -> None:
    gateway_key = nacl.public.PrivateKey.generate()
    public = bytes(gateway_key.public_key).hex()
    first = seal_in_chromium(page, public, provider_key)
    again = seal_in_chromium(page, public, provider_key)
    sealed = base64.b64decode(first["sealed"], validate=True)
    header = len(f"{sealing.PAYLOAD_TAG}\n{BINDING.owner}\n{BINDING.provider}\n")
    assert len(sealed) == sealing.SEAL_OVERHEAD_BYTES + header + len(provider_key)
    assert sealing.open_sealed(gateway_key, sealed, BINDING) == provider_key
    assert first["fingerprint"] == sealing.fingerprint(provider_key)
    # a fresh ephemeral key each time: the same key never seals to the same bytes
    assert first["sealed"] != again["sealed"]
    assert sealing.open_sealed(gateway_key, base64.b64decode(again["sealed"]), BINDING) == (
        provider_key
    )
    assert page.errors == []


def test_only_the_recipient_opens_it_and_nobody_alters_it_unseen(page: Watched) -> None:
    gateway_key = nacl.public.PrivateKey.generate()
    sealed = base64.b64decode(
        seal_in_chromium(page, bytes(gateway_key.public_key).hex(), KEYS[1])["sealed"]
    )
    with pytest.raises(sealing.SealedKeyError, match="does not open"):
        sealing.open_sealed(nacl.public.PrivateKey.generate(), sealed, BINDING)
    for at in (0, 32, len(sealed) - 1):  # the ephemeral key, the tag, the ciphertext
        bent = bytearray(sealed)
        bent[at] ^= 1
        with pytest.raises(sealing.SealedKeyError, match="does not open"):
            sealing.open_sealed(gateway_key, bytes(bent), BINDING)
    # what the browser sealed is bound: for another SafeRouter key or provider it does not serve
    for other in (sealing.Binding("ab" * 32, "deepseek"), sealing.Binding(BINDING.owner, "zai")):
        with pytest.raises(sealing.SealedKeyError, match="another SafeRouter key"):
            sealing.open_sealed(gateway_key, sealed, other)


@pytest.mark.parametrize(
    "provider_key",
    [
        "",
        "sk with space",
        "sk-\t",
        "sk-é",
        "sk-\x7f",
        "x" * (sealing.PROVIDER_KEY_MAX_BYTES + 1),
        "k" * (sealing.PROVIDER_KEY_MIN_BYTES - 1),
    ],
    ids=["empty", "space", "tab", "non-ascii", "del", "too-long", "too-short"],
)
def test_the_page_refuses_what_the_gateway_refuses(page: Watched, provider_key: str) -> None:
    with pytest.raises(sealing.SealedKeyError) as python:
        sealing.check_provider_key(provider_key)
    public = bytes(nacl.public.PrivateKey.generate().public_key).hex()
    assert seal_in_chromium(page, public, provider_key) == {"error": str(python.value)}


@pytest.mark.parametrize("public_key", ["", "ab" * 31, "AB" * 32, "zz" * 32, "ab" * 33])
def test_only_a_64_hex_digit_public_key_is_sealed_to(page: Watched, public_key: str) -> None:
    assert seal_in_chromium(page, public_key, KEYS[1]) == {
        "error": "the BYOK public key is not 64 lowercase hex digits"
    }


def test_the_page_binds_only_a_provider_the_gateway_can_name(page: Watched) -> None:
    with pytest.raises(sealing.SealedKeyError) as python:
        sealing.Binding(BINDING.owner, "no such/provider")
    public = bytes(nacl.public.PrivateKey.generate().public_key).hex()
    assert seal_in_chromium(page, public, KEYS[1], provider="no such/provider") == {
        "error": str(python.value)
    }
