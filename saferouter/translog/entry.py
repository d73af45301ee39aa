"""A signed log entry, pure: encode it, hash it, and verify it from the outside.

Each entry is canonical JSON (RFC 8785) shaped like a Rekor entry of SafeRouter's own
kind — ``{"apiVersion": "0.0.1", "kind": …, "spec": {…}, "signature": <base64>}`` —
where the Ed25519 signature covers the canonical JSON of the entry without
``signature``. The log (:mod:`.log`) writes entries and ``saferouter verify`` checks
them; this module is what both share, so the client side imports no store.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..canonical import canonical_json
from . import note

API_VERSION = "0.0.1"


def encode_entry(kind: str, spec: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    """The canonical bytes of a ``kind`` entry, signed by ``key`` over the entry without
    ``signature`` (Ed25519, RFC 8032, over RFC 8785 canonical JSON)."""
    unsigned = {"apiVersion": API_VERSION, "kind": kind, "spec": spec}
    signature = key.sign(canonical_json(unsigned))
    return canonical_json({**unsigned, "signature": base64.b64encode(signature).decode()})


def entry_hash(body: bytes) -> str:
    """Hex SHA-256 of an entry's bytes: what the next entry names as ``prev_entry_hash``."""
    return hashlib.sha256(body).hexdigest()


def decode_entry(body: bytes) -> dict[str, Any]:
    """The entry's JSON, unverified (for the gateway's own entries, read back)."""
    value: dict[str, Any] = json.loads(body)
    return value


def verify_entry(body: bytes, public_key: bytes) -> dict[str, Any]:
    """The entry, once its signature verifies with ``public_key``. Raises NoteError."""
    entry = decode_entry(body)
    signature = base64.b64decode(entry.pop("signature", ""))
    if canonical_json({**entry, "signature": base64.b64encode(signature).decode()}) != body:
        raise note.NoteError("the entry is not in canonical form")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, canonical_json(entry)
        )
    except (InvalidSignature, ValueError) as exc:
        raise note.NoteError("the entry's signature does not verify") from exc
    return entry
