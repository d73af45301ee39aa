"""Pinned origins, the default audience that meets them, and the state file's shape."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from saferouter.config import load_settings
from saferouter.errors import ParseError
from saferouter.verify.origin import authority, log_origin, url_authority
from saferouter.verify.state import TreeHead, VerifyState, load_state, load_states, save_state


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("https://127.0.0.1:8443/", "127.0.0.1:8443"),
        ("https://Gateway.Example", "gateway.example"),
        ("https://gateway.example:443", "gateway.example"),  # the scheme's default port
        ("http://gateway.example:80/v1", "gateway.example"),
        ("http://gateway.example:443", "gateway.example:443"),  # not http's default
        ("https://[::1]:8443", "[::1]:8443"),
    ],
)
def test_a_url_pins_its_authority(url: str, expected: str) -> None:
    assert url_authority(url) == expected
    assert log_origin(url_authority(url), "receipts") == f"{expected}/receipts"


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:8080", "https://", "http://h:port"])
def test_not_an_http_url(url: str) -> None:
    with pytest.raises(ParseError):
        url_authority(url)


def test_the_default_audience_is_the_listen_authority(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path, port=9443)
    assert settings.audience == "127.0.0.1:9443" == url_authority("https://127.0.0.1:9443")
    ipv6 = load_settings({}, data_dir=tmp_path, host="::1", port=9443)
    assert ipv6.audience == authority("::1", 9443) == "[::1]:9443"
    named = load_settings({"SAFEROUTER_AUDIENCE": "gw.example"}, data_dir=tmp_path, port=1)
    assert named.audience == "gw.example"


def test_state_round_trips(tmp_path: Path) -> None:
    state = VerifyState(
        identity=bytes(range(32)),
        authority="gw.example",
        measurement="ab" * 32,
        root="DEMO",
        tls_spki_sha256="cd" * 32,
        heads={"startup": TreeHead(3, b"\x01" * 32), "receipts": TreeHead(0, b"\x02" * 32)},
    )
    save_state(tmp_path / "s.json", state)
    assert load_state(tmp_path / "s.json") == state
    assert load_state(tmp_path / "absent.json") is None


def test_an_old_state_file_with_an_audit_head_is_read_without_it(tmp_path: Path) -> None:
    old = {
        "identity": "00" * 32,
        "startup": {"size": 2, "root": "11" * 32},
        "audit": {"size": 5, "root": "22" * 32},
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    state = load_state(tmp_path / "old.json")
    assert state is not None and state.authority is None
    assert state.heads == {"startup": TreeHead(2, b"\x11" * 32)}


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"identity": "zz"}', '{"identity": "00", "startup": {"size": -1}}'],
)
def test_a_broken_state_file_is_a_parse_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ParseError):
        load_state(tmp_path / "bad.json")


def test_each_replica_is_remembered_apart(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    a = VerifyState(identity=b"\xaa" * 32, heads={"startup": TreeHead(1, b"\x01" * 32)})
    b = VerifyState(identity=b"\xbb" * 32, heads={"startup": TreeHead(7, b"\x02" * 32)})
    save_state(path, a)
    save_state(path, b)
    newer_a = attrs.evolve(a, heads={"startup": TreeHead(2, b"\x03" * 32)})
    save_state(path, newer_a)  # replaces what was remembered of a, keeps b
    assert load_states(path) == [b, newer_a]  # the one verified last, last
    assert load_state(path, b"\xbb" * 32) == b
    assert load_state(path) == newer_a
    assert load_state(path, b"\xcc" * 32) is None


def test_a_state_file_from_before_replicas_reads_as_one(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps({"identity": "aa" * 32}))
    assert load_states(tmp_path / "old.json") == [VerifyState(identity=b"\xaa" * 32)]
