"""The strict client-input readers: valid and invalid vectors, each with its reason, and
properties over any input (a reader returns a safe value or raises InvalidRequest)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.client_input import (
    MAX_COUNT,
    parse_count,
    parse_json_body,
    parse_unix_time,
    parse_usd_micro,
    validate_json_count,
    validate_model_id,
    validate_storable,
)
from saferouter.errors import InvalidRequest
from saferouter.gateway.dialects.chat import parse_chat_request
from saferouter.gateway.routing import parse_client_models

CHAT = b'{"model": "demo", "messages": [{"role": "user", "content": %s}]}'


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (rb'"\ud800"', "messages[0].content"),  # lone high surrogate
        (rb'"ok \udfff"', "messages[0].content"),  # lone low surrogate
        (rb'"\ude00\ud83d"', "messages[0].content"),  # a pair in the wrong order
        (rb'[{"type": "text", "text": "\udbff"}]', "messages[0].content[0].text"),
        (b'"\xed\xa0\x80"', "messages[0].content"),  # a surrogate as raw (CESU) bytes
    ],
)
def test_a_lone_surrogate_is_a_400_naming_where(content: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(CHAT % content)
    assert (caught.value.status, caught.value.code) == (400, "invalid_unicode")
    assert caught.value.param == param


def test_a_surrogate_in_a_key_or_the_model_is_refused_too() -> None:
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        parse_json_body(rb'{"a": {"\ud800": 1}}')
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(rb'{"model": "\ud800", "messages": [{"role": "user"}]}')
    assert caught.value.param == "model"


def test_a_surrogate_pair_is_one_character_and_fine() -> None:
    chat = parse_chat_request(CHAT % rb'"smile \ud83d\ude00"')
    assert chat.payload["messages"][0]["content"] == "smile \U0001f600"


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_a_number_json_cannot_carry_back_is_invalid_json(number: bytes) -> None:
    body = b'{"model": "demo", "temperature": %s, "messages": [{"role": "user"}]}' % number
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(body)
    assert caught.value.code == "invalid_json"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_what_parses_can_be_encoded_again(value: object) -> None:
    body = json.dumps(value).encode()  # surrogates escaped, NaN written as NaN
    try:
        parsed = parse_json_body(body)
    except InvalidRequest as error:
        assert error.code in ("invalid_json", "invalid_unicode")
        return
    json.dumps(parsed, ensure_ascii=False, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize(
    "model",
    ["demo", "fake/x", "deepseek/deepseek-chat", "a:b@c", 'q"uote\\', "x" * 256],
)
def test_plain_model_ids_pass(model: str) -> None:
    assert validate_model_id(model, param="model") == model


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("", "empty"),
        ("fake/a\nb", "line feed: would split a header"),
        ("fake/a\rb", "carriage return"),
        ("fake/a b", "space"),
        ("fake/a\tb", "tab"),
        ("fake/a\x00b", "NUL"),
        ("fake/a\x7fb", "DEL"),
        ("fake/é", "not ASCII"),
        ("fake/\u2028", "a Unicode line separator"),
        ("x" * 257, "257 bytes"),
    ],
)
def test_other_model_ids_are_a_400(model: str, reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_model_id(model, param="model")
    assert (caught.value.code, caught.value.param) == ("invalid_model_id", "model"), reason


def test_the_models_list_is_checked_with_the_same_rule() -> None:
    assert parse_client_models(["demo", "fake/x"]) == ["demo", "fake/x"]
    with pytest.raises(InvalidRequest) as caught:
        parse_client_models(["demo", "fake/a\nb"])
    assert (caught.value.code, caught.value.param) == ("invalid_model_id", "models[1]")
    with pytest.raises(InvalidRequest) as caught:
        parse_client_models(["demo", 7])
    assert caught.value.param == "models[1]"


@pytest.mark.parametrize(
    "text",
    ["", "0", "7", "500", "0007", str(MAX_COUNT)],
)
def test_counts_in_ascii_digits_pass(text: str) -> None:
    value = parse_count({"n": text}, "n", default=-1)
    assert value == (int(text) if text else -1)


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999999",  # beyond SQLite's INTEGER
        str(MAX_COUNT + 1),
        "²",  # str.isdigit() says yes, int() says no
        "١٢",  # Arabic-Indic digits: int() reads 12
        "5_000",  # int() reads 5000
        " 5",
        "5\n",
        "+5",
        "-1",
        "1e3",
        "0x10",
    ],
)
def test_counts_in_anything_else_are_a_400(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_count({"n": text}, "n", default=0)
    assert (caught.value.code, caught.value.param) == ("invalid_value", "n")


def test_a_count_outside_its_bounds_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="from 1 to 500"):
        parse_count({"limit": "501"}, "limit", default=50, low=1, high=500)
    with pytest.raises(InvalidRequest):
        parse_count({"before": "0"}, "before", default=None, low=1)
    assert parse_count({}, "before", default=None, low=1) is None


@given(st.text())
def test_a_count_is_ascii_digits_or_refused(text: str) -> None:
    try:
        value = parse_count({"n": text}, "n", default=None)
    except InvalidRequest:
        return
    assert value is None or (text.isascii() and text.isdigit() and 0 <= value <= MAX_COUNT)


@pytest.mark.parametrize(
    ("value", "micro"),
    [
        ("12.5", 12_500_000),
        ("0.000001", 1),
        ("0", 0),
        ("1000000000", 10**15),
        (12, 12_000_000),
        (0.1, 100_000),
        (1e-05, 10),
        (2.5e2, 250_000_000),
    ],
)
def test_usd_amounts_read_exactly(value: object, micro: int) -> None:
    assert parse_usd_micro(value, param="amount_usd") == micro


@pytest.mark.parametrize(
    "value",
    [
        "1e999999",  # Decimal reads it; multiplying it overflowed (a 500)
        "5_000",
        "١٢",
        "²",
        "1e3",
        "-1",
        "+1",
        " 1",
        "1.",
        ".5",
        "0.0000001",
        "1000000000.000001",
        "NaN",
        "Infinity",
        -1,
        10**9 + 1,
        1e300,
        1e-7,
        True,
        None,
        [],
    ],
)
def test_other_usd_amounts_are_a_400(value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_usd_micro(value, param="amount_usd")
    assert (caught.value.code, caught.value.param) == ("invalid_value", "amount_usd")


@given(st.text() | st.integers() | st.floats())
def test_an_amount_is_bounded_micro_usd_or_refused(value: object) -> None:
    try:
        micro = parse_usd_micro(value, param="a")
    except InvalidRequest:
        return
    assert 0 <= micro <= 10**15
    if isinstance(value, str):
        assert value.isascii()


@pytest.mark.parametrize("bad", ["²", "١٢", "1e9", "nan", "inf", "-5", "1_000", "1" * 13])
def test_unix_times_are_ascii_digits(bad: str) -> None:
    assert parse_unix_time({"since": "1767225600.5"}, "since") == 1767225600.5
    assert parse_unix_time({}, "since") is None
    with pytest.raises(InvalidRequest) as caught:
        parse_unix_time({"since": bad}, "since")
    assert caught.value.param == "since"


@pytest.mark.parametrize("bad", [True, 0, -1, 1.5, "5", 2**31, None])
def test_json_counts_are_bounded_integers(bad: object) -> None:
    assert validate_json_count(60, param="rpm_limit", high=2**31 - 1) == 60
    with pytest.raises(InvalidRequest):
        validate_json_count(bad, param="rpm_limit", high=2**31 - 1)


@pytest.mark.parametrize("text", ["é\u0301 🙂", "\u2028", "\uffff", "'; --", "%s ?", ""])
def test_storable_text_is_returned_as_it_is(text: str) -> None:
    assert validate_storable(text, param="name") == text


@pytest.mark.parametrize("text", ["\x00", "a\x00", "\x00b", "a\x00b"])
def test_a_nul_which_postgresql_cannot_store_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate_storable(text, param="name")
    assert (refused.value.code, refused.value.param) == ("invalid_value", "name")
