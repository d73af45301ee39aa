"""The BYOK key pair: one per build (measurement) in a data dir, private, stable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.public
import pytest

from saferouter.attestation.identity import byok_key_kind, load_or_create_key
from saferouter.attestation.measurement import Measurement
from saferouter.byok import sealing
from saferouter.errors import KeyFileError
from saferouter.tee.seal import DemoKeySource, Sealer


def measurement(name: str) -> Measurement:
    return Measurement(digest=hashlib.sha256(name.encode()).digest(), code={}, config={})


BUILD_A, BUILD_B = measurement("build a"), measurement("build b")
BINDING = sealing.Binding("0f" * 32, "deepseek")  # whose provider key, for which provider


def test_the_key_file_is_named_for_its_measurement_and_private(tmp_path: Path) -> None:
    key = load_or_create_key(byok_key_kind(BUILD_A), tmp_path)
    path = tmp_path / f"byok-{BUILD_A.hex[:16]}.key"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == bytes(key) and len(bytes(key)) == 32


def test_a_reload_is_the_same_key_and_opens_what_was_sealed_to_it(tmp_path: Path) -> None:
    first = load_or_create_key(byok_key_kind(BUILD_A), tmp_path)
    sealed = sealing.seal(bytes(first.public_key), "sk-provider-key", BINDING)
    again = load_or_create_key(byok_key_kind(BUILD_A), tmp_path)
    assert bytes(again.public_key) == bytes(first.public_key)
    assert sealing.open_sealed(again, sealed, BINDING) == "sk-provider-key"


def test_another_measurement_makes_its_own_key_that_cannot_open_the_first(
    tmp_path: Path,
) -> None:
    a = load_or_create_key(byok_key_kind(BUILD_A), tmp_path)
    b = load_or_create_key(byok_key_kind(BUILD_B), tmp_path)
    assert bytes(a.public_key) != bytes(b.public_key)
    assert len(list(tmp_path.iterdir())) == 2  # a's file stays: going back opens a's keys
    with pytest.raises(sealing.SealedKeyError):
        sealing.open_sealed(
            b, sealing.seal(bytes(a.public_key), "sk-provider-key", BINDING), BINDING
        )


def test_a_sealed_key_opens_only_under_its_launch_measurement(tmp_path: Path) -> None:
    """sev-snp: the file holds the key sealed, as the identity is; a chip key derived
    under another launch measurement does not open it."""

    def sealer(launch: bytes) -> Sealer:
        return Sealer(DemoKeySource(tmp_path / "secret", launch), measurement=launch)

    data = tmp_path / "data"
    key = load_or_create_key(byok_key_kind(BUILD_A), data, sealer(b"A" * 48))
    sealed = (data / f"byok-{BUILD_A.hex[:16]}.sealed").read_bytes()
    assert bytes(key) not in sealed
    again = load_or_create_key(byok_key_kind(BUILD_A), data, sealer(b"A" * 48))
    assert bytes(again.public_key) == bytes(key.public_key)
    with pytest.raises(KeyFileError, match="sealed under another measurement"):
        load_or_create_key(byok_key_kind(BUILD_A), data, sealer(b"B" * 48))


def test_the_kind_round_trips_a_key() -> None:
    kind = byok_key_kind(BUILD_A)
    key = nacl.public.PrivateKey.generate()
    assert bytes(kind.decode(kind.encode(key))) == bytes(key)
