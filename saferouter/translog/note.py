"""C2SP signed notes and tlog checkpoints (pure).

signed-note (c2sp.org/signed-note): the text (UTF-8, ends in a newline), a blank line,
then lines ``— <name> <base64(4-byte key ID ‖ signature)>``. An Ed25519 key's ID is
``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4]``; its verifier key is written
``<name>+<hex key ID>+<base64(0x01 ‖ public key)>``. Rekor v1's ECDSA checkpoints use
``SHA-256(SPKI DER)[:4]`` as the ID, and are verified the same way.

tlog-checkpoint (c2sp.org/tlog-checkpoint): the text is ``<origin>\\n<size>\\n<base64
root>\\n`` plus optional extension lines. :func:`verify_checkpoint` parses a checkpoint
only after its signature verified (transparency-dev/formats does the same).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import ParseError, VerificationError

SIG_ED25519 = 0x01
_DASH = "\u2014 "


class NoteError(VerificationError):
    """A signed note or checkpoint that does not verify."""


@attrs.frozen
class NoteVerifier:
    name: str
    key_id: bytes  # 4 bytes
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

    def verify(self, text: bytes, signature: bytes) -> None:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, text)
            else:
                self.public_key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise NoteError(f"the signature by {self.name} does not verify") from None

    def vkey(self) -> str:
        """The C2SP verifier key string (Ed25519 only)."""
        assert isinstance(self.public_key, ed25519.Ed25519PublicKey)
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return (
            f"{self.name}+{self.key_id.hex()}+"
            f"{base64.b64encode(bytes([SIG_ED25519]) + raw).decode()}"
        )


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([SIG_ED25519]) + public_key).digest()[:4]


def ed25519_verifier(name: str, public_key: bytes) -> NoteVerifier:
    return NoteVerifier(
        name=name,
        key_id=ed25519_key_id(name, public_key),
        public_key=ed25519.Ed25519PublicKey.from_public_bytes(public_key),
    )


def ecdsa_verifier(name: str, spki_der: bytes) -> NoteVerifier:
    """A Rekor v1 style ECDSA log key (key ID = SHA-256(SPKI)[:4])."""
    key = serialization.load_der_public_key(spki_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ParseError("not an ECDSA public key")
    return NoteVerifier(name=name, key_id=hashlib.sha256(spki_der).digest()[:4], public_key=key)


def parse_vkey(vkey: str) -> NoteVerifier:
    """``name+hexid+base64(0x01 ‖ key)``. Raises ParseError."""
    try:
        name, key_id_hex, encoded = vkey.split("+", 2)
        blob = base64.b64decode(encoded, validate=True)
        key_id = bytes.fromhex(key_id_hex)
    except (ValueError, binascii.Error):
        raise ParseError("a verifier key is name+hexid+base64") from None
    if len(blob) != 33 or blob[0] != SIG_ED25519:
        raise ParseError("only Ed25519 verifier keys are supported")
    verifier = ed25519_verifier(name, blob[1:])
    if verifier.key_id != key_id:
        raise ParseError("the verifier key's ID does not match its key")
    return verifier


def sign_note(text: str, name: str, private_key: ed25519.Ed25519PrivateKey) -> str:
    if not text.endswith("\n"):
        raise ValueError("a note's text ends with a newline")
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    blob = ed25519_key_id(name, raw) + private_key.sign(text.encode())
    return f"{text}\n{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def verify_note(note: str, verifiers: Sequence[NoteVerifier]) -> str:
    """The note's text, once a known key's signature on it verifies. Unknown keys are
    ignored; a known key whose signature fails rejects the note."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text += "\n"
    verified = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError("a signature line starts with an em dash")
        name, _, encoded = line[len(_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        for verifier in verifiers:
            if verifier.name == name and verifier.key_id == blob[:4]:
                verifier.verify(text.encode(), blob[4:])
                verified = True
    if not verified:
        raise NoteError("no known key signed this note")
    return text


@attrs.frozen
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root_hash).decode(),
            *self.extensions,
        ]
        return "\n".join(lines) + "\n"


def verify_checkpoint(note: str, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """Verify the note, then parse its text as a checkpoint."""
    text = verify_note(note, verifiers)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError("the checkpoint's size is not a plain decimal")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(
        origin=origin, size=int(size_text), root_hash=root, extensions=tuple(lines[3:])
    )
