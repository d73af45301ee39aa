"""The strict readers of what a client sends: JSON bodies, model ids, counts, amounts (pure).

Each reader returns a value that is safe everywhere the gateway may carry it next — into
``json.dumps(...).encode()`` for the upstream, an HTTP header, a Prometheus label, an
SQLite integer column, a ``Decimal`` — or raises :class:`InvalidRequest` (400, rendered
OpenAI-shaped), so bad input ends before admission and never as a 500 further on:

* a JSON body parses only if it can be re-encoded: numbers are finite (``NaN``,
  ``Infinity`` and ``1e999``, which Python reads as ``inf``, are refused) and every string
  is valid Unicode (``"\\ud800"`` is a lone UTF-16 surrogate that ``json.loads`` accepts
  but UTF-8 cannot encode);
* a model id is printable ASCII without spaces (it is echoed in ``X-SafeRouter-*``
  headers, where a newline is refused only after the request was admitted and billed);
* a count or an amount is ASCII digits only, with a bounded number of them, so
  ``int``/``Decimal`` never see ``"5_000"``, ``"١٢"``, ``"²"`` or ``"1e999999"``;
* text that may reach the store (a key's name, a query value) holds no NUL:
  PostgreSQL's text cannot hold U+0000, so every store refuses it alike, here (a path
  holding one names nothing: a 404, before any route looks it up).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from .errors import InvalidRequest

D = TypeVar("D", int, None)  # what parse_count returns for an absent parameter

MAX_MODEL_ID_BYTES = 256
# The largest count a client may name: it fits SQLite's INTEGER (2^63 − 1) and is
# exact as a JSON number in every client (2^53 − 1, RFC 8259 §6).
MAX_COUNT = 2**53 - 1
COUNT_PATTERN = "[0-9]{1,16}"  # ASCII digits, never more than MAX_COUNT has
_COUNT_TEXT = re.compile(COUNT_PATTERN)
MAX_RATE_LIMIT = 2**31 - 1  # requests or tokens per minute: far above any real limit
# Printable ASCII is 0x21..0x7e without the space: nothing a header or a label cannot hold.
_MODEL_ID = re.compile(r"[\x21-\x7e]+")
MAX_USD = 10**9  # one amount of credits; far above any real top-up
USD_DECIMALS = 6  # the ledger counts micro-USD
_USD_TEXT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,6})?")
_UNIX_TIME_TEXT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def parse_json_body(body: bytes) -> Any:
    """The JSON value of a request body that can also be encoded back to UTF-8 JSON.

    Raises InvalidRequest: ``invalid_json`` for bytes that are not JSON (RFC 8259) or
    hold a non-finite number, ``invalid_unicode`` for a string with a lone surrogate.
    """
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be valid "
            "JSON (RFC 8259), its numbers finite.",
            code="invalid_json",
        ) from None
    validate_sendable(value)
    return value


def json_decoder(*, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any]) -> json.JSONDecoder:
    """A decoder that reads numbers as :func:`parse_json_body` does (finite, no ``NaN``)."""
    return json.JSONDecoder(
        parse_constant=_refuse_constant,
        parse_float=_finite_float,
        object_pairs_hook=object_pairs_hook,
    )


def validate_sendable(value: Any) -> None:
    """Refuse a parsed JSON value holding a string UTF-8 cannot encode. Raises
    InvalidRequest (``invalid_unicode``, naming where the string sits)."""
    try:
        # Every string (and key) must be sendable as UTF-8: one encode of the whole value
        # is the cheapest complete check, and the way an odd body goes upstream (encoded).
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        where = _first_unencodable(value)
        raise InvalidRequest(
            f"The string at '{where}' is not valid Unicode: it holds a lone UTF-16 "
            "surrogate (an unpaired \\ud800-\\udfff escape). Send text as valid UTF-8.",
            param=where,
            code="invalid_unicode",
        ) from None
    except RecursionError:
        raise InvalidRequest("The JSON body is nested too deeply.", code="invalid_json") from None


def validate_storable(value: str, *, param: str) -> str:
    """Text the store may keep or search for: no NUL (U+0000), which PostgreSQL's text
    cannot hold (SQLite's can; refused for both, so the stores never disagree). Raises
    InvalidRequest (``invalid_value``)."""
    if "\x00" in value:
        raise InvalidRequest(
            f"'{param}' must not contain NUL (U+0000).", param=param, code="invalid_value"
        )
    return value


def validate_model_id(value: object, *, param: str) -> str:
    """A model id as a client names it: printable ASCII without spaces or control
    characters, 1 to 256 bytes. Raises InvalidRequest (``invalid_model_id``)."""
    if not isinstance(value, str):
        raise InvalidRequest(
            f"'{param}' must be a string (a model id).", param=param, code="invalid_type"
        )
    if len(value) > MAX_MODEL_ID_BYTES or _MODEL_ID.fullmatch(value) is None:
        raise InvalidRequest(
            f"'{param}' must be a model id: 1 to {MAX_MODEL_ID_BYTES} printable ASCII "
            "characters without spaces (see GET /v1/models).",
            param=param,
            code="invalid_model_id",
        )
    return value


def parse_count(
    args: Mapping[str, str], name: str, *, default: D, low: int = 0, high: int = MAX_COUNT
) -> int | D:
    """Query parameter ``name``: a whole number in ``[low, high]`` written in ASCII digits;
    ``default`` when absent or empty. Raises InvalidRequest."""
    text = args.get(name)
    if text is None or text == "":
        return default
    if _COUNT_TEXT.fullmatch(text) is None or not low <= int(text) <= high:
        raise InvalidRequest(
            f"'{name}' must be a whole number from {low} to {high}, in digits 0-9.",
            param=name,
            code="invalid_value",
        )
    return int(text)


def validate_json_count(value: object, *, param: str, low: int = 1, high: int = MAX_COUNT) -> int:
    """A JSON integer (not a boolean, not a float) in ``[low, high]``. Raises InvalidRequest."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"'{param}' must be an integer from {low} to {high}.",
            param=param,
            code="invalid_value",
        )
    return value


def parse_usd_micro(value: object, *, param: str) -> int:
    """A USD amount ≥ 0 with at most 6 decimals, as micro-USD: a JSON number or a string
    of ASCII digits (``"12.5"``; no exponent, sign, ``_`` or other scripts' digits).
    Raises InvalidRequest."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _bad_usd(param, 'an amount of USD: a number or a string such as "12.50"')
    if isinstance(value, int | float) and not (math.isfinite(value) and 0 <= value <= MAX_USD):
        _bad_usd(param, f"from 0 to {MAX_USD} USD")
    if isinstance(value, str):
        if _USD_TEXT.fullmatch(value) is None:
            _bad_usd(param, 'digits 0-9 with at most 6 decimals, such as "12.50"')
        amount = Decimal(value)
    else:
        # A float's shortest repr is exact enough and bounded (checked above), so the
        # Decimal below cannot overflow; 0.1 stays 0.1.
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    micro = amount.scaleb(USD_DECIMALS)
    if micro != micro.to_integral_value():
        _bad_usd(param, "≥ 0 with at most 6 decimals")
    if micro > MAX_USD * 10**USD_DECIMALS:
        _bad_usd(param, f"at most {MAX_USD} USD")
    return int(micro)


def parse_unix_time(args: Mapping[str, str], name: str) -> float | None:
    """Query parameter ``name``: a Unix time in seconds (``1767225600``, a fraction
    allowed) in ASCII digits; None when absent or empty. Raises InvalidRequest."""
    text = args.get(name)
    if text is None or text == "":
        return None
    if _UNIX_TIME_TEXT.fullmatch(text) is None:
        raise InvalidRequest(
            f"'{name}' must be a Unix time in seconds, in digits 0-9 (e.g. 1767225600).",
            param=name,
            code="invalid_value",
        )
    return float(text)


def _bad_usd(param: str, what: str) -> NoReturn:
    raise InvalidRequest(f"'{param}' must be {what}.", param=param, code="invalid_value")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a double")
    return value


def _first_unencodable(value: Any) -> str:
    """Where the first string UTF-8 cannot hold sits, as ``messages[0].content``."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and not _encodable(item):
            return path or "body"
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                child_path = f"{path}.{key}" if path else key
                if not _encodable(key):
                    return path or "body"
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return "body"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def wrong_type(param: str, expected: str, value: object) -> InvalidRequest:
    """The error for a request field of the wrong JSON type (OpenAI's wording)."""
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)}.",
        param=param,
        code="invalid_type",
    )


def parse_token_limit(payload: Mapping[str, Any], name: str) -> int | None:
    """A request's token limit ``name``: absent or null is None, else an integer ≥ 1.
    Raises InvalidRequest."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(name, "an integer", value)
    if value < 1:
        raise InvalidRequest(
            f"'{name}' must be at least 1, got {value}.", param=name, code="invalid_value"
        )
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
