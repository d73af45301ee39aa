"""Reading small JSON bodies of the management endpoints, with OpenAI-shaped errors.

The values are read by the strict readers of :mod:`saferouter.client_input`, so what
passes here fits SQLite (bounded integers, valid Unicode) without a 500 on the way.
"""

from __future__ import annotations

from typing import Any

from quart import request

from ..client_input import (
    MAX_RATE_LIMIT,
    parse_json_body,
    parse_usd_micro,
    validate_json_count,
)
from ..errors import InvalidRequest


async def json_object() -> dict[str, Any]:
    """The request body as a JSON object (an empty body reads as ``{}``)."""
    raw = await request.get_data(cache=False, as_text=False)
    assert isinstance(raw, bytes)
    data = parse_json_body(raw or b"{}")
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_body")
    return data


def optional_str(data: dict[str, Any], name: str, *, max_len: int = 200) -> str | None:
    """A non-empty string field (stripped), or None when absent."""
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
    """A positive integer limit, or None (no limit)."""
    value = data.get(name)
    if value is None:
        return None
    return validate_json_count(value, param=name, low=1, high=MAX_RATE_LIMIT)


def usd_micro(data: dict[str, Any], name: str) -> int | None:
    """A USD amount (number or decimal string, ≤ 6 decimals, ≥ 0) as micro-USD."""
    value = data.get(name)
    if value is None:
        return None
    return parse_usd_micro(value, param=name)
