"""The calling app from OpenRouter's headers: what is kept, what is dropped whole, and
that no bytes make it raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.gateway.attribution import MAX_APP_CHARS, App, parse_app


def app(*headers: tuple[bytes, bytes]) -> App:
    return parse_app(list(headers))


def test_title_and_referer_are_kept_as_sent() -> None:
    assert app((b"x-title", b"My App"), (b"http-referer", b"https://my.app/x")) == App(
        "My App", "https://my.app/x"
    )
    assert app((b"x-title", "Café ☕".encode())).title == "Café ☕"
    assert app() == App(None, None)


def test_the_openrouter_sdks_title_header_wins_over_x_title() -> None:
    both = app((b"x-title", b"old"), (b"x-openrouter-title", b"new"))
    assert both.title == "new"


def test_outer_spaces_are_stripped_and_an_empty_value_is_none() -> None:
    assert app((b"x-title", b"  padded  ")).title == "padded"
    assert app((b"x-title", b"   ")).title is None


@pytest.mark.parametrize(
    "raw",
    [
        b"nul\x00inside",
        b"line\r\nX-Injected: 1",
        b"tab\there",
        b"esc\x1b[31mred",
        "c1\u0085next".encode(),
        "right-to-left\u202eoverride".encode(),
        "zero\u200bwidth".encode(),
        b"\xff\xfe not utf-8",
        b"x" * (MAX_APP_CHARS + 1),
    ],
    ids=repr,
)
def test_a_value_that_cannot_be_kept_as_said_is_dropped_whole(raw: bytes) -> None:
    dropped = app((b"x-title", raw), (b"http-referer", raw))
    assert dropped == App(None, None)


def test_a_title_of_the_bound_is_kept() -> None:
    assert app((b"x-title", "é".encode() * MAX_APP_CHARS)).title == "é" * MAX_APP_CHARS


@given(st.lists(st.tuples(st.sampled_from([b"x-title", b"http-referer", b"x"]), st.binary())))
def test_no_headers_make_it_raise_and_what_it_keeps_is_storable(
    headers: list[tuple[bytes, bytes]],
) -> None:
    found = parse_app(headers)
    for value in (found.title, found.referer):
        assert value is None or (
            0 < len(value) <= MAX_APP_CHARS and "\x00" not in value and value == value.strip()
        )
