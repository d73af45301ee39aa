"""Reading small JSON bodies of the management endpoints, with OpenAI-shaped errors.

The values are read by the strict readers of :mod:`saferouter.client_input`, so what
passes here fits SQLite (bounded integers, valid Unicode) without a 500 on the way.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from quart import request

from ..client_input import (
    MAX_RATE_LIMIT,
    parse_json_body,
    parse_usd_micro,
    validate_json_count,
    validate_storable,
)
from ..errors import InvalidRequest, PayloadTooLarge


async def json_object(
    *,
    fields: Collection[str] | None = None,
    max_bytes: int | None = None,
    json_content_type: bool = False,
) -> dict[str, Any]:
    """The request body as a JSON object (an empty body reads as ``{}``).

    With ``fields``, a field outside them is refused (400 ``invalid_body``) rather than
    ignored: a misspelt flag would otherwise be silently left at its default. With
    ``max_bytes``, a longer body is refused (413) before it is parsed — tighter than the
    app's ``MAX_CONTENT_LENGTH``, for an endpoint whose bodies are all small. With
    ``json_content_type``, a Content-Type other than JSON is refused (415); none at all
    is read as JSON.
    """
    if json_content_type:
        _check_json_content_type(request.headers.get("Content-Type"))
    raw = await request.get_data(cache=False, as_text=False)
    assert isinstance(raw, bytes)
    if max_bytes is not None and len(raw) > max_bytes:
        raise PayloadTooLarge(f"This request body is at most {max_bytes} bytes.")
    data = parse_json_body(raw or b"{}")
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_body")
    unknown = set(data) - set(fields) if fields is not None else set()
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_body"
        )
    return data


def _check_json_content_type(content_type: str | None) -> None:
    if content_type is not None and content_type.split(";")[0].strip().lower() != (
        "application/json"
    ):
        raise InvalidRequest(
            "The body must be JSON, sent with Content-Type: application/json.",
            code="unsupported_media_type",
            status=415,
        )


def optional_bool(data: dict[str, Any], name: str, *, default: bool = False) -> bool:
    """A true/false field, or ``default`` when absent (400 ``invalid_type`` otherwise)."""
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name, code="invalid_type")
    return value


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
    return validate_storable(value.strip(), param=name)


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
