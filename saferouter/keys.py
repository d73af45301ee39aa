"""API keys: ``sk-sr-`` + 256 random bits; stored only as a SHA-256 hash.

A key carries 256 bits of entropy, so one SHA-256 is enough to make the stored hash
useless to a thief (no dictionary to try); a slow password hash would only cost every
request time.
"""

from __future__ import annotations

import hashlib
import secrets

import attrs

KEY_PREFIX = "sk-sr-"
DISPLAY_CHARS = 10  # "sk-sr-" and four random characters


@attrs.frozen
class NewKey:
    secret: str = attrs.field(repr=False)
    hash: str
    display_prefix: str


def generate_key() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits
    return NewKey(secret=secret, hash=hash_key(secret), display_prefix=secret[:DISPLAY_CHARS])


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def owner_of(authorization: str | None) -> str:
    """The owner a sealed provider key is bound to (``byok.sealing.Binding``): the hash
    of the secret an authenticated request presented — its key's ``key_hash``."""
    return hash_key(parse_bearer(authorization) or "")


def parse_bearer(header: str | None) -> str | None:
    """The secret in an ``Authorization: Bearer …`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
