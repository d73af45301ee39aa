"""The sealed provider key, pure: how a client seals it and how the gateway opens it.

The format is libsodium's sealed box (``crypto_box_seal``, ``nacl.public.SealedBox``):
an ephemeral X25519 public key (32 bytes), then the XSalsa20-Poly1305 box of the
provider key's UTF-8 bytes, its nonce the BLAKE2b-192 of the ephemeral and the
recipient public keys. The sender keeps no secret and the gateway learns no sender: only
the holder of the recipient's private key can open it, and nobody can alter it unseen.
The browser's sealing (``web/assets/sealedbox.js``) makes the same bytes.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.public

from ..errors import SealError

PUBLIC_KEY_BYTES = 32
SEAL_OVERHEAD_BYTES = 48  # the ephemeral public key (32) and the Poly1305 tag (16)
PROVIDER_KEY_MAX_BYTES = 1024  # provider keys are ~50 characters; a JWT-style one fits
SEALED_KEY_MAX_BYTES = PROVIDER_KEY_MAX_BYTES + SEAL_OVERHEAD_BYTES
FINGERPRINT_HEX_CHARS = 12


class SealedKeyError(SealError):
    """The sealed key does not open with this key, or what it holds is not a key."""


def seal(public_key: bytes, provider_key: str) -> bytes:
    """The sealed box of ``provider_key`` to the X25519 ``public_key`` (32 bytes)."""
    check_provider_key(provider_key)
    return nacl.public.SealedBox(nacl.public.PublicKey(public_key)).encrypt(provider_key.encode())


def open_sealed(private_key: nacl.public.PrivateKey, sealed: bytes) -> str:
    """The provider key inside ``sealed``; :class:`SealedKeyError` when it was sealed to
    another key, was altered, or holds no usable key."""
    if not SEAL_OVERHEAD_BYTES < len(sealed) <= SEALED_KEY_MAX_BYTES:
        raise SealedKeyError(
            f"a sealed key is {SEAL_OVERHEAD_BYTES + 1} to {SEALED_KEY_MAX_BYTES} bytes"
        )
    try:
        raw = nacl.public.SealedBox(private_key).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise SealedKeyError("it does not open with this gateway's BYOK key") from None
    try:
        provider_key = raw.decode()
    except UnicodeDecodeError:
        raise SealedKeyError("what it holds is not UTF-8 text") from None
    check_provider_key(provider_key)
    return provider_key


def check_provider_key(provider_key: str) -> None:
    """A provider key goes into an ``Authorization: Bearer`` header: printable ASCII
    without spaces, 1 to :data:`PROVIDER_KEY_MAX_BYTES` bytes."""
    if not provider_key:
        raise SealedKeyError("the provider key is empty")
    # the characters first: a str read with surrogateescape (stdin in a C or C.UTF-8
    # locale) holds lone surrogates for bytes that are not UTF-8, and .encode() raises
    if not all("!" <= ch <= "~" for ch in provider_key):
        raise SealedKeyError("the provider key holds a space, a control or a non-ASCII character")
    if len(provider_key) > PROVIDER_KEY_MAX_BYTES:  # ASCII: one byte a character
        raise SealedKeyError(f"the provider key is over {PROVIDER_KEY_MAX_BYTES} bytes")


def fingerprint(provider_key: str) -> str:
    """A short name for a provider key that reveals nothing usable of it: the first
    :data:`FINGERPRINT_HEX_CHARS` hex digits of its SHA-256 (the CLI and the Keys page
    show the same, so a user can tell which key a gateway holds)."""
    return hashlib.sha256(provider_key.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]
