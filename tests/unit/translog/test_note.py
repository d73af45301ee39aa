"""C2SP signed notes and checkpoints: the spec's vector, real Rekor checkpoints, ours."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.errors import ParseError
from saferouter.translog import note
from saferouter.translog.note import Checkpoint, NoteError

from ...conftest import testdata_dir as shared_testdata

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuw"
    "HjG1Yu72IneyaQM=\n"
)


def test_the_c2sp_signed_note_vector() -> None:
    verifier = note.parse_vkey(SPEC_VKEY)
    assert verifier.key_id.hex() == "530d903a" and verifier.vkey() == SPEC_VKEY
    assert note.verify_note(SPEC_NOTE, [verifier]) == "This is an example message.\n"
    with pytest.raises(NoteError):
        note.verify_note(SPEC_NOTE.replace("example message", "exemplary message"), [verifier])
    with pytest.raises(NoteError, match="no known key"):
        note.verify_note(SPEC_NOTE, [])


def trusted(index: int) -> dict[str, object]:
    root_dir = shared_testdata()
    assert root_dir is not None
    tlogs: list[dict[str, object]] = json.loads(
        (root_dir / "translog" / "sigstage-trusted_root.json").read_text()
    )["tlogs"]
    return tlogs[index]


def checkpoint_of(bundle: str) -> tuple[str, dict[str, str]]:
    root_dir = shared_testdata()
    assert root_dir is not None
    entry = json.loads((root_dir / "translog" / bundle).read_text())["verificationMaterial"][
        "tlogEntries"
    ][0]
    return entry["inclusionProof"]["checkpoint"]["envelope"], entry["inclusionProof"]


def test_rekor_v1_ecdsa_checkpoint(testdata: object) -> None:
    envelope, proof = checkpoint_of("rekor-v1-bundle.sigstore.json")
    key = base64.b64decode(trusted(0)["publicKey"]["rawBytes"])  # type: ignore[index]
    verifier = note.ecdsa_verifier("rekor.sigstage.dev", key)
    checkpoint = note.verify_checkpoint(envelope, [verifier])
    assert checkpoint.origin == "rekor.sigstage.dev - 8050909264565447525"
    assert checkpoint.size == int(proof["treeSize"])
    assert checkpoint.root_hash == base64.b64decode(proof["rootHash"])
    with pytest.raises(NoteError):
        note.verify_checkpoint(envelope.replace("25901138", "25901139"), [verifier])


def test_rekor_v2_ed25519_checkpoint(testdata: object) -> None:
    envelope, proof = checkpoint_of("rekor-v2-bundle.sigstore.json")
    spki = base64.b64decode(trusted(1)["publicKey"]["rawBytes"])  # type: ignore[index]
    raw = spki[-32:]
    verifier = note.ed25519_verifier("log2025-alpha1.rekor.sigstage.dev", raw)
    log_id = base64.b64decode(trusted(1)["logId"]["keyId"])  # type: ignore[index]
    assert verifier.key_id == log_id[:4]
    checkpoint = note.verify_checkpoint(envelope, [verifier])
    assert (checkpoint.size, checkpoint.root_hash) == (
        int(proof["treeSize"]),
        base64.b64decode(proof["rootHash"]),
    )


def test_sign_and_verify_our_own_checkpoints() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    verifier = note.ed25519_verifier("saferouter.test/startup", raw)
    cp = Checkpoint(origin="saferouter.test/startup", size=5, root_hash=bytes(range(32)))
    signed = note.sign_note(cp.text(), "saferouter.test/startup", key)
    assert note.verify_checkpoint(signed, [verifier]) == cp
    assert note.parse_vkey(verifier.vkey()) == verifier
    other = note.ed25519_verifier(
        "saferouter.test/startup",
        ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
    )
    with pytest.raises(NoteError, match="no known key"):
        note.verify_checkpoint(signed, [other])  # a re-signed log with a different key
    extra = Checkpoint(origin="o", size=0, root_hash=bytes(32), extensions=("x",))
    assert (
        note.verify_checkpoint(
            note.sign_note(extra.text(), "o", key), [note.ed25519_verifier("o", raw)]
        )
        == extra
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("only\n", "origin, a size"),
        ("o\n01\nAAAA\n", "plain decimal"),
        ("o\n1\n!!!\n", "base64"),
        ("o\n1\nAAAA\n", "32 bytes"),
    ],
)
def test_malformed_checkpoints(text: str, message: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    verifier = note.ed25519_verifier("o", key.public_key().public_bytes_raw())
    with pytest.raises(NoteError, match=message):
        note.verify_checkpoint(note.sign_note(text, "o", key), [verifier])


def test_malformed_notes_and_keys() -> None:
    verifier = note.parse_vkey(SPEC_VKEY)
    for bad in (
        "no blank line\n",
        "text\n\nnot a signature line\n",
        "text\n\n\u2014 example.com/foo !!!\n",
    ):
        with pytest.raises(NoteError):
            note.verify_note(bad, [verifier])
    for bad_key in (
        "no-plus",
        "a+zz+AA==",
        "a+530d903a+AgAA",
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ):
        with pytest.raises(ParseError):
            note.parse_vkey(bad_key)
    with pytest.raises(ValueError):
        note.sign_note("no newline", "o", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ParseError):
        note.ecdsa_verifier(
            "x", ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(*_spki())
        )


def _spki() -> tuple[object, object]:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
