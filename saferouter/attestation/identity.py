"""The gateway's persistent private keys: the Ed25519 identity, the TLS key, the BYOK key.

Each is created once, inside the process, in the data dir, and never leaves it. In demo
mode it is a 0600 file; in ``sev-snp`` mode the file holds the key sealed
(``tee.seal``) under the launch measurement, so only the same build on the same machine
can load it. Both kinds go through :func:`load_or_create_key`; a :class:`KeyKind` says
only how a kind is named, generated and (de)serialized.

The identity signs log entries, checkpoints and receipts; its public key is in every
quote's claims. The TLS key (ECDSA P-256, what every TLS client accepts) is the key of
the certificate ``serve --tls`` presents; the SHA-256 of its SubjectPublicKeyInfo is
in every quote's claims too (``tls/``).

The BYOK key (X25519) opens the provider keys users seal to it (``byok/sealing.py``);
its public key is the ``byok_public_key`` claim. Unlike the other two, its file is named
per measurement (:func:`byok_key_kind`): a build with another code or configuration
makes a key pair of its own and can never open what was sealed to another build's. In
``sev-snp`` mode the seal under the launch measurement guarantees that already; the name
gives the same guarantee to demo mode, where keys are plain files any build could read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import attrs
import nacl.public
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..datadir import write_private_file
from ..errors import KeyFileError, SealError
from ..tee.seal import Sealer
from ..tls.certificates import decode_p256, encode_pkcs8
from .measurement import Measurement

K = TypeVar("K")


@attrs.frozen
class KeyKind(Generic[K]):
    """One kind of persistent key: its file names and how its bytes are made and read."""

    name: str  # the file stem: ``<name>.key`` plain, ``<name>.sealed`` sealed
    generate: Callable[[], K]
    encode: Callable[[K], bytes]
    decode: Callable[[bytes], K]

    def path(self, data_dir: Path, *, sealed: bool) -> Path:
        """Where this kind's key lives in ``data_dir``."""
        return data_dir / f"{self.name}.{'sealed' if sealed else 'key'}"


def load_or_create_key(kind: KeyKind[K], data_dir: Path, sealer: Sealer | None = None) -> K:
    """The key of ``kind``; created on first use. With ``sealer`` it is kept sealed.

    A key is never overwritten (``write_private_file`` refuses an existing name), so
    two processes starting at once cannot end up with different keys in one data dir.
    Raises KeyFileError, naming the file, when it does not read as a key of ``kind``."""
    path = kind.path(data_dir, sealed=sealer is not None)
    if not path.exists():
        key = kind.generate()
        raw = kind.encode(key)
        try:
            write_private_file(path, sealer.seal(raw) if sealer else raw)
            return key
        except FileExistsError:
            pass  # made meanwhile by another process: that one is the key
    raw = path.read_bytes()
    try:
        return kind.decode(sealer.unseal(raw) if sealer else raw)
    except (SealError, ValueError, TypeError) as exc:
        # A key file appears whole or not at all, so this one was damaged or comes from
        # elsewhere. Said once, here, for every kind: the decoders (nacl, cryptography)
        # raise their own ValueError/TypeError, which would end a start in a traceback.
        raise KeyFileError(f"the key file {path} cannot be used: {exc}") from None


def _ed25519_raw(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


IDENTITY: KeyKind[ed25519.Ed25519PrivateKey] = KeyKind(
    name="identity",
    generate=ed25519.Ed25519PrivateKey.generate,
    encode=_ed25519_raw,
    decode=ed25519.Ed25519PrivateKey.from_private_bytes,
)

TLS_KEY: KeyKind[ec.EllipticCurvePrivateKey] = KeyKind(
    name="tls",
    generate=lambda: ec.generate_private_key(ec.SECP256R1()),
    encode=encode_pkcs8,
    decode=decode_p256,
)

BYOK_NAME_HEX_CHARS = 16  # 64 bits of the measurement: no two builds share a file


def byok_key_kind(measurement: Measurement) -> KeyKind[nacl.public.PrivateKey]:
    """The BYOK key of the build ``measurement`` names, in ``byok-<16 hex>.key|.sealed``."""
    return KeyKind(
        name=f"byok-{measurement.hex[:BYOK_NAME_HEX_CHARS]}",
        generate=nacl.public.PrivateKey.generate,
        encode=bytes,  # the raw 32-byte X25519 scalar
        decode=nacl.public.PrivateKey,
    )


def load_or_create_identity(
    data_dir: Path, sealer: Sealer | None = None
) -> ed25519.Ed25519PrivateKey:
    """The identity key; created on first use. With ``sealer`` it is kept sealed."""
    return load_or_create_key(IDENTITY, data_dir, sealer)


def public_bytes(key: ed25519.Ed25519PrivateKey) -> bytes:
    """The identity's raw 32-byte Ed25519 public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
