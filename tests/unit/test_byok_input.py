"""The provider key as `saferouter byok add` reads it from a pipe: one trailing newline
dropped, and anything that could not be a key refused before anything is sealed."""

from __future__ import annotations

import io

import pytest

from saferouter.byok.commands import read_provider_key
from saferouter.byok.sealing import PROVIDER_KEY_MAX_BYTES, SealedKeyError


@pytest.mark.parametrize(
    ("piped", "key"),
    [("sk-abc123", "sk-abc123"), ("sk-abc123\n", "sk-abc123"), ("sk-abc123\r\n", "sk-abc123")],
)
def test_valid(piped: str, key: str) -> None:
    assert read_provider_key(io.StringIO(piped)) == key


@pytest.mark.parametrize(
    ("piped", "reason"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("sk-abc123\n\n", "control"),  # only one newline is the terminal's
        ("sk-abc\n", "under 8"),  # too short to be told from text, so to be redacted
        (" sk-abc", "space"),
        ("sk-abc é", "space"),
        ("k" * (PROVIDER_KEY_MAX_BYTES + 1), "over"),
        ("k" * (PROVIDER_KEY_MAX_BYTES + 100) + "\n", "over"),
        ("\udcff\udcfesk", "non-ASCII"),  # bytes no UTF-8, as surrogateescape reads them
    ],
)
def test_invalid(piped: str, reason: str) -> None:
    with pytest.raises(SealedKeyError, match=reason):
        read_provider_key(io.StringIO(piped))


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_bytes_that_are_no_text_are_refused_as_a_key(errors: str) -> None:
    """Binary on stdin: refused like any other bad key, under either decoding a locale
    gives stdin (a strict one raises while reading, C.UTF-8 reads surrogates)."""
    piped = io.TextIOWrapper(io.BytesIO(b"\xff\xfe\x00sk-abc"), encoding="utf-8", errors=errors)
    with pytest.raises(SealedKeyError, match=r"not UTF-8|non-ASCII"):
        read_provider_key(piped)
