"""A key file of the data dir that does not read as its key stops the start with one
error naming the file (KeyFileError), never a decoder's own exception — and is never
replaced: what was signed or sealed with it hangs on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from saferouter.attestation.identity import (
    IDENTITY,
    TLS_KEY,
    KeyKind,
    byok_key_kind,
    load_or_create_key,
)
from saferouter.attestation.measurement import Measurement
from saferouter.errors import KeyFileError
from saferouter.tee.seal import DemoKeySource, Sealer

BUILD = Measurement(digest=hashlib.sha256(b"build").digest(), code={}, config={})
KINDS: dict[str, KeyKind[object]] = {
    "identity": IDENTITY,  # type: ignore[dict-item]
    "tls": TLS_KEY,  # type: ignore[dict-item]
    "byok": byok_key_kind(BUILD),  # type: ignore[dict-item]
}
DAMAGE = {
    "truncated": lambda raw: raw[:10],
    "empty": lambda raw: b"",
    "a byte more": lambda raw: raw + b"\n",
    "other bytes": lambda raw: b"\x00" * len(raw) if len(raw) != 32 else b"x" * 31,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_plain_key_file_is_a_key_file_error_naming_it(
    tmp_path: Path, kind: str, damage: str
) -> None:
    load_or_create_key(KINDS[kind], tmp_path)
    path = KINDS[kind].path(tmp_path, sealed=False)
    damaged = DAMAGE[damage](path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(KeyFileError, match=f"the key file {path} cannot be used"):
        load_or_create_key(KINDS[kind], tmp_path)
    assert path.read_bytes() == damaged  # kept as it is, for its owner to look at


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_sealed_under_another_launch_measurement_is_a_key_file_error(
    tmp_path: Path, kind: str
) -> None:
    def sealer(launch: bytes) -> Sealer:
        return Sealer(DemoKeySource(tmp_path / "secret", launch), measurement=launch)

    data = tmp_path / "data"
    load_or_create_key(KINDS[kind], data, sealer(b"A" * 48))
    with pytest.raises(KeyFileError, match="sealed under another measurement"):
        load_or_create_key(KINDS[kind], data, sealer(b"B" * 48))
