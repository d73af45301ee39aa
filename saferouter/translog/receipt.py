"""A signed receipt for one request, pure: its bytes, signature and log leaf.

A receipt is a JSON object of strings, integers, booleans, null, lists and objects
(``gateway/receipts.py`` builds it; the field list is in README "Receipts"). Its bytes
are the RFC 8785 canonical JSON; the gateway's identity (Ed25519) signs
``SIGNING_CONTEXT ‖ bytes`` — the prefix keeps a receipt signature from ever being read
as the signature of a log entry or a checkpoint, which the same key makes. Its leaf in
the public receipt log is the RFC 9162 leaf hash ``SHA-256(0x00 ‖ bytes)``: the log holds
only these, so it reveals how many requests were served and nothing about them.

The gateway signs with this module and ``saferouter verify-receipt`` (and the verifier
page, in WebCrypto) check with it, so both sides hash and sign the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..canonical import canonical_json
from ..errors import VerificationError
from . import merkle

SIGNING_CONTEXT = b"saferouter-receipt/v1\n"
RECEIPT_VERSION = 1


class ReceiptError(VerificationError):
    """A receipt's signature, leaf or response hash does not hold."""


def receipt_bytes(receipt: dict[str, Any]) -> bytes:
    """The canonical bytes of a receipt: what is signed and what the log leaf covers."""
    return canonical_json(receipt)


def sign_receipt(receipt: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    """The identity's Ed25519 signature over the receipt (64 bytes)."""
    return sign_receipt_bytes(receipt_bytes(receipt), key)


def sign_receipt_bytes(data: bytes, key: ed25519.Ed25519PrivateKey) -> bytes:
    """:func:`sign_receipt` over a receipt's bytes already encoded (the gateway encodes
    once, then signs and hashes the same bytes)."""
    return key.sign(SIGNING_CONTEXT + data)


def verify_receipt_signature(receipt: dict[str, Any], signature: bytes, public_key: bytes) -> None:
    """Raises :class:`ReceiptError` unless ``public_key`` signed exactly this receipt."""
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, SIGNING_CONTEXT + receipt_bytes(receipt)
        )
    except (InvalidSignature, ValueError) as exc:
        raise ReceiptError("the receipt's signature does not verify") from exc


def receipt_leaf_hash(receipt: dict[str, Any]) -> bytes:
    """The receipt's leaf hash in the public receipt log (RFC 9162)."""
    return merkle.leaf_hash(receipt_bytes(receipt))


def response_digest(data: bytes) -> str:
    """Hex SHA-256 of response bytes, as a receipt's ``response_sha256`` holds it."""
    return hashlib.sha256(data).hexdigest()
