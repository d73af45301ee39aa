"""The sealed provider key, pure: how a client seals it and how the gateway opens it.

The format is libsodium's sealed box (``crypto_box_seal``, ``nacl.public.SealedBox``):
an ephemeral X25519 public key (32 bytes), then the XSalsa20-Poly1305 box of the
payload, its nonce the BLAKE2b-192 of the ephemeral and the recipient public keys. Only
the holder of the recipient's private key can open it, and nobody can alter it unseen.
The browser's sealing (``saferouter/web/assets/sealedbox.js``) makes the same bytes.

The payload binds the provider key to its owner (:class:`Binding`), four lines of ASCII::

    saferouter-byok/v1
    <hex SHA-256 of the SafeRouter key's secret, as the store keeps it>
    <provider id>
    <provider key>

A sealed box says nothing of who sent it, so without the binding anyone who saw the
ciphertext — the operator reading its database, or the wire — could upload the same
bytes under a SafeRouter key of their own (or for another provider) and have the gateway
spend the owner's provider account for them. With it, the gateway opens a box only for
the request of the key whose secret hashes to the owner named inside, and only for the
provider named inside: nobody who does not hold the SafeRouter key can make it serve.
"""

from __future__ import annotations

import hashlib
import re

import attrs
import nacl.exceptions
import nacl.public

from ..errors import SealError

PUBLIC_KEY_BYTES = 32
SEAL_OVERHEAD_BYTES = 48  # the ephemeral public key (32) and the Poly1305 tag (16)
PROVIDER_KEY_MAX_BYTES = 1024  # provider keys are ~50 characters; a JWT-style one fits
PROVIDER_KEY_MIN_BYTES = 8  # the shortest the redactor strips from upstream answers
PAYLOAD_TAG = "saferouter-byok/v1"
PROVIDER_ID_MAX_CHARS = 64
# the tag, the owner (64 hex) and the provider id, each with its newline
PAYLOAD_HEADER_MAX_BYTES = len(PAYLOAD_TAG) + 1 + 64 + 1 + PROVIDER_ID_MAX_CHARS + 1
SEALED_KEY_MAX_BYTES = SEAL_OVERHEAD_BYTES + PAYLOAD_HEADER_MAX_BYTES + PROVIDER_KEY_MAX_BYTES
_OWNER = re.compile(r"[0-9a-f]{64}")
_PROVIDER = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # PROVIDER_ID_MAX_CHARS
FINGERPRINT_HEX_CHARS = 12


class SealedKeyError(SealError):
    """The sealed key does not open with this key, or what it holds is not a key."""


@attrs.frozen
class Binding:
    """Whose provider key a box holds: the SafeRouter key (``owner``: the hex SHA-256 of
    its secret, ``keys.hash_key``) and the provider it is for."""

    owner: str
    provider: str

    def __attrs_post_init__(self) -> None:
        if not _OWNER.fullmatch(self.owner):
            raise SealedKeyError("the owner is not the 64 hex digits of a key's SHA-256")
        if not _PROVIDER.fullmatch(self.provider):
            raise SealedKeyError("the provider id is not 1 to 64 of A-Z a-z 0-9 _ . -")

    def payload(self, provider_key: str) -> bytes:
        """What is sealed: the tag, this binding and the key, a line each."""
        check_provider_key(provider_key)
        return f"{PAYLOAD_TAG}\n{self.owner}\n{self.provider}\n{provider_key}".encode()


def seal(public_key: bytes, provider_key: str, binding: Binding) -> bytes:
    """The sealed box of ``provider_key``, bound to ``binding``, to the X25519
    ``public_key`` (32 bytes)."""
    payload = binding.payload(provider_key)
    return nacl.public.SealedBox(nacl.public.PublicKey(public_key)).encrypt(payload)


def open_sealed(private_key: nacl.public.PrivateKey, sealed: bytes, binding: Binding) -> str:
    """The provider key inside ``sealed``, if it is bound to ``binding``;
    :class:`SealedKeyError` when it was sealed to another key, was altered, holds no
    usable key, or is bound to another SafeRouter key or provider."""
    if not SEAL_OVERHEAD_BYTES < len(sealed) <= SEALED_KEY_MAX_BYTES:
        raise SealedKeyError(
            f"a sealed key is {SEAL_OVERHEAD_BYTES + 1} to {SEALED_KEY_MAX_BYTES} bytes"
        )
    try:
        raw = nacl.public.SealedBox(private_key).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise SealedKeyError("it does not open with this gateway's BYOK key") from None
    try:
        tag, owner, provider, provider_key = raw.decode("ascii").split("\n", 3)
    except (UnicodeDecodeError, ValueError):
        raise SealedKeyError(f"what it holds is not a {PAYLOAD_TAG} payload") from None
    if tag != PAYLOAD_TAG:
        raise SealedKeyError(f"what it holds is not a {PAYLOAD_TAG} payload")
    if (owner, provider) != (binding.owner, binding.provider):
        raise SealedKeyError(
            f"it was sealed for another SafeRouter key or another provider than "
            f"{binding.provider}: seal your key with your own SafeRouter key, for this provider"
        )
    check_provider_key(provider_key)
    return provider_key


def check_provider_key(provider_key: str) -> None:
    """A provider key goes into an ``Authorization: Bearer`` header: printable ASCII
    without spaces, :data:`PROVIDER_KEY_MIN_BYTES` to :data:`PROVIDER_KEY_MAX_BYTES`
    bytes (a shorter one could not be told from ordinary text, so an upstream echoing it
    could not have it redacted: ``gateway.redact.MIN_KEY_CHARS``)."""
    if not provider_key:
        raise SealedKeyError("the provider key is empty")
    # the characters first: a str read with surrogateescape (stdin in a C or C.UTF-8
    # locale) holds lone surrogates for bytes that are not UTF-8, and .encode() raises
    if not all("!" <= ch <= "~" for ch in provider_key):
        raise SealedKeyError("the provider key holds a space, a control or a non-ASCII character")
    if len(provider_key) > PROVIDER_KEY_MAX_BYTES:  # ASCII: one byte a character
        raise SealedKeyError(f"the provider key is over {PROVIDER_KEY_MAX_BYTES} bytes")
    if len(provider_key) < PROVIDER_KEY_MIN_BYTES:
        raise SealedKeyError(f"the provider key is under {PROVIDER_KEY_MIN_BYTES} characters")


def fingerprint(provider_key: str) -> str:
    """A short name for a provider key that reveals nothing usable of it: the first
    :data:`FINGERPRINT_HEX_CHARS` hex digits of its SHA-256 (the CLI and the Keys page
    show the same, so a user can tell which key a gateway holds)."""
    return hashlib.sha256(provider_key.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]
