"""Canonical JSON (RFC 8785, JCS) for the values SafeRouter signs and hashes.

SafeRouter's signed objects hold only strings, integers, booleans, null, lists and
objects, so JCS reduces to: object members sorted by their UTF-16 code units, no
whitespace, strings escaped as ECMAScript's JSON.stringify does (which
``json.dumps(ensure_ascii=False)`` matches for these), integers in plain decimal.
Floats are refused rather than risk a number that serializes differently elsewhere.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value``. Raises TypeError for floats and other types."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise TypeError("integers beyond 2^53 are not portable JSON numbers")
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("object keys must be strings")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return (
            "{"
            + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_encode(value[k])}" for k in keys)
            + "}"
        )
    raise TypeError(f"{type(value).__name__} has no canonical JSON form here")
