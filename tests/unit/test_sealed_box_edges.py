"""The edges of the sealed box the gateway opens (``sealing.open_sealed``): what a key
may hold, its size limits exactly, and boxes made with a low-order ephemeral point —
whose X25519 shared secret is all zeros, so anybody could have made (and opened) them.
Payloads are built here by hand (``binding.payload`` refuses a bad key first)."""

from __future__ import annotations

import hashlib
import struct

import nacl.bindings
import nacl.public
import pytest

from saferouter.byok import sealing

RECIPIENT = nacl.public.PrivateKey.generate()
BINDING = sealing.Binding(owner="ab" * 32, provider="deepseek")
HEADER = f"{sealing.PAYLOAD_TAG}\n{BINDING.owner}\n{BINDING.provider}\n".encode()


def sealed(plaintext: bytes) -> bytes:
    """The box of a well-bound payload holding ``plaintext`` as the provider key."""
    return nacl.public.SealedBox(RECIPIENT.public_key).encrypt(HEADER + plaintext)


@pytest.mark.parametrize(
    ("plaintext", "opens"),
    [
        (b"x" * sealing.PROVIDER_KEY_MIN_BYTES, True),  # the shortest
        (b"x" * (sealing.PROVIDER_KEY_MIN_BYTES - 1), False),  # one under
        (b"k" * sealing.PROVIDER_KEY_MAX_BYTES, True),  # exactly the most
        (b"k" * (sealing.PROVIDER_KEY_MAX_BYTES + 1), False),  # one over
        (b"sk-abc\n", False),  # a newline would end the Authorization header early
        (b"sk-abc\r\n", False),
        (b"sk\x00abc", False),
        (b"sk-\xc3\xa9", False),  # UTF-8, not ASCII
        (b"\xff\xfe", False),  # not UTF-8 (nor ASCII)
        (b"", False),
    ],
)
def test_what_a_sealed_key_may_hold(plaintext: bytes, opens: bool) -> None:
    box = sealed(plaintext)
    if opens:
        assert sealing.open_sealed(RECIPIENT, box, BINDING) == plaintext.decode()
    else:
        with pytest.raises(sealing.SealedKeyError):
            sealing.open_sealed(RECIPIENT, box, BINDING)


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """HSalsa20 (Bernstein, "Extending the Salsa20 nonce", §2), written out here so the
    test can make what a box with an all-zero shared secret looks like."""
    mask = 0xFFFFFFFF
    c = struct.unpack("<4I", b"expand 32-byte k")
    k, n = struct.unpack("<8I", key), struct.unpack("<4I", nonce16)
    x = [c[0], *k[:4], c[1], *n, c[2], *k[4:], c[3]]

    def quarter(a: int, b: int, d: int, e: int) -> None:
        def rotl(v: int, s: int) -> int:
            return ((v << s) | (v >> (32 - s))) & mask

        x[b] ^= rotl((x[a] + x[e]) & mask, 7)
        x[d] ^= rotl((x[b] + x[a]) & mask, 9)
        x[e] ^= rotl((x[d] + x[b]) & mask, 13)
        x[a] ^= rotl((x[e] + x[d]) & mask, 18)

    for _ in range(10):
        for a, b, d, e in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)):
            quarter(a, b, d, e)
        for a, b, d, e in ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            quarter(a, b, d, e)
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def test_the_hsalsa20_here_is_libsodiums() -> None:
    other = nacl.public.PrivateKey.generate()
    shared = nacl.bindings.crypto_scalarmult(bytes(other), bytes(RECIPIENT.public_key))
    assert _hsalsa20(shared, bytes(16)) == nacl.bindings.crypto_box_beforenm(
        bytes(RECIPIENT.public_key), bytes(other)
    )


LOW_ORDER_POINTS = {  # Curve25519 points of order 1, 2, 4, 8 (and non-canonical twins)
    "zero": bytes(32),
    "one": (1).to_bytes(32, "little"),
    "order 8": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "p - 1": bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
}


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_a_box_from_a_low_order_ephemeral_point_is_refused(point: str) -> None:
    ephemeral = LOW_ORDER_POINTS[point]
    nonce = hashlib.blake2b(ephemeral + bytes(RECIPIENT.public_key), digest_size=24).digest()
    zero_key = _hsalsa20(bytes(32), bytes(16))  # what such a point shares with anyone
    payload = BINDING.payload("sk-anyone-made-this")
    box = ephemeral + nacl.bindings.crypto_secretbox(payload, nonce, zero_key)
    # the box is well made for an all-zero secret: a check-free X25519 would open it
    assert nacl.bindings.crypto_secretbox_open(box[32:], nonce, zero_key) == payload
    with pytest.raises(sealing.SealedKeyError, match="does not open"):
        sealing.open_sealed(RECIPIENT, box, BINDING)
