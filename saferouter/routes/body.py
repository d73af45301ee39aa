"""Reading small JSON bodies of the management endpoints, with OpenAI-shaped errors."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from quart import request

from ..errors import InvalidRequest


async def json_object() -> dict[str, Any]:
    raw = await request.get_data(cache=False, as_text=False)
    assert isinstance(raw, bytes)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise InvalidRequest("The body must be valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_body")
    return data


def optional_str(data: dict[str, Any], name: str, *, max_len: int = 200) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidRequest(
            f"'{name}' must be a non-empty string of at most {max_len} characters.",
            param=name,
            code="invalid_value",
        )
    return value.strip()


def optional_limit(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(
            f"'{name}' must be a positive integer or null.", param=name, code="invalid_value"
        )
    return value


def usd_micro(data: dict[str, Any], name: str) -> int | None:
    """A USD amount (number or decimal string, ≤ 6 decimals, ≥ 0) as micro-USD."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(
            f"'{name}' must be an amount of USD.", param=name, code="invalid_value"
        )
    try:
        micro = Decimal(str(value)) * 1_000_000
    except InvalidOperation:
        raise InvalidRequest(
            f"'{name}' must be an amount of USD.", param=name, code="invalid_value"
        ) from None
    if not micro.is_finite() or micro < 0 or micro != micro.to_integral_value():
        raise InvalidRequest(
            f"'{name}' must be ≥ 0 with at most 6 decimals.", param=name, code="invalid_value"
        )
    if micro > 10**15:
        raise InvalidRequest(f"'{name}' is too large.", param=name, code="invalid_value")
    return int(micro)
