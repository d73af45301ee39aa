"""The gateway's persistent Ed25519 signing identity.

Created once in the data dir. In demo mode it is a 0600 file; in ``sev-snp`` mode the
file holds the key sealed (``tee.seal``) under the launch measurement, so only the same
build on the same machine can load it. It signs log entries, checkpoints and audit
samples; its public key is in every quote's claims.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..datadir import write_private_file
from ..tee.seal import Sealer

PLAIN_FILE = "identity.key"
SEALED_FILE = "identity.sealed"


def load_or_create_identity(
    data_dir: Path, sealer: Sealer | None = None
) -> ed25519.Ed25519PrivateKey:
    """The identity key; created on first use. With ``sealer`` it is kept sealed."""
    path = data_dir / (SEALED_FILE if sealer else PLAIN_FILE)
    if path.exists():
        raw = path.read_bytes()
        return ed25519.Ed25519PrivateKey.from_private_bytes(sealer.unseal(raw) if sealer else raw)
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    write_private_file(path, sealer.seal(raw) if sealer else raw)
    return key


def public_bytes(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
