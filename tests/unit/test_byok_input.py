"""The provider key as `saferouter byok add` reads it from a pipe: one trailing newline
dropped, and anything that could not be a key refused before anything is sealed."""

from __future__ import annotations

import io

import pytest

from saferouter.byok.commands import read_provider_key
from saferouter.byok.sealing import PROVIDER_KEY_MAX_BYTES, SealedKeyError


@pytest.mark.parametrize(
    ("piped", "key"),
    [("sk-abc", "sk-abc"), ("sk-abc\n", "sk-abc"), ("sk-abc\r\n", "sk-abc")],
)
def test_valid(piped: str, key: str) -> None:
    assert read_provider_key(io.StringIO(piped)) == key


@pytest.mark.parametrize(
    ("piped", "reason"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("sk-abc\n\n", "control"),  # only one newline is the terminal's
        (" sk-abc", "space"),
        ("sk-abc é", "space"),
        ("k" * (PROVIDER_KEY_MAX_BYTES + 1), "over"),
        ("k" * (PROVIDER_KEY_MAX_BYTES + 100) + "\n", "over"),
    ],
)
def test_invalid(piped: str, reason: str) -> None:
    with pytest.raises(SealedKeyError, match=reason):
        read_provider_key(io.StringIO(piped))
