"""The strict reader of OpenRouter's ``provider`` object (pure).

Every field is checked for its shape before routing reads it, and every error names the
field (``provider.order[2]``, ``provider.max_price.prompt``), OpenAI-shaped: a bad shape
is ``invalid_type`` / ``invalid_value``, a field OpenRouter does not define is
``unknown_parameter``, and a value asking for what this gateway cannot vouch for is
``unsupported_value`` with the reason (:data:`NOT_VOUCHED`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import InvalidRequest

MAX_PROVIDER_NAMES = 32
MAX_PROVIDER_NAME_CHARS = 100
SORTS = ("price", "latency", "throughput")
MICRO_PER_USD = 1_000_000
_PRICE_TEXT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,12})?")
_MAX_PRICE_FIELDS = ("prompt", "completion", "request", "image", "audio")
_PERCENTILES = ("p50", "p75", "p90", "p99")

# What a field asks for that SafeRouter cannot honour, and why: its value other than
# the default is refused rather than dropped.
NOT_VOUCHED = {
    "data_collection": "SafeRouter does not know its providers' data collection terms",
    "zdr": "SafeRouter cannot vouch for its providers' data retention",
    "require_parameters": (
        "SafeRouter passes every parameter on and does not know which each provider honours"
    ),
    "quantizations": "the catalog does not record how its models are quantized",
    "enforce_distillable_text": "the catalog does not record models' distillation terms",
    "options": "provider-specific options are not forwarded by SafeRouter",
}
_FIELDS = frozenset(
    {
        "order",
        "only",
        "ignore",
        "allow_fallbacks",
        "sort",
        "max_price",
        "preferred_max_latency",
        "preferred_min_throughput",
        *NOT_VOUCHED,
    }
)


def check_unknown(value: object) -> Mapping[str, Any] | None:
    """The ``provider`` object's fields; None for an absent or null one."""
    if value is None:
        return None
    fields = _object(value, "provider")
    _known(fields, _FIELDS, "provider")
    return fields


def check_unvouched(fields: Mapping[str, Any]) -> None:
    """Refuse what cannot be honoured; its default (or an empty list) passes."""
    collection = fields.get("data_collection")
    if collection not in (None, "allow", "deny"):
        raise _invalid("data_collection", "must be 'allow' or 'deny'")
    for name in ("zdr", "require_parameters", "enforce_distillable_text"):
        optional_bool(fields, name, default=False)
    quantizations = fields.get("quantizations")
    if quantizations is not None and not isinstance(quantizations, list):
        raise _wrong_type("quantizations", "an array")
    options = fields.get("options")
    if options is not None:
        _object(options, "provider.options")
    asked = {
        "data_collection": collection == "deny",
        "zdr": fields.get("zdr") is True,
        "require_parameters": fields.get("require_parameters") is True,
        "quantizations": bool(quantizations),
        "enforce_distillable_text": fields.get("enforce_distillable_text") is True,
        "options": bool(options),
    }
    for name, is_asked in asked.items():
        if is_asked:
            raise InvalidRequest(
                f"'provider.{name}' is not supported: {NOT_VOUCHED[name]}. Leave it out "
                "(or at its default) to route here.",
                param=f"provider.{name}",
                code="unsupported_value",
            )


def check_names(fields: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    """A list of provider names (None: absent or null)."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _wrong_type(name, "an array of provider names")
    if len(value) > MAX_PROVIDER_NAMES:
        raise _invalid(name, f"may list at most {MAX_PROVIDER_NAMES} providers")
    for i, item in enumerate(value):
        # printable only: an unknown name is kept in the activity entry's note (a NUL
        # there is a settlement PostgreSQL refuses), and shown on the Activity page
        if (
            not isinstance(item, str)
            or not 1 <= len(item) <= MAX_PROVIDER_NAME_CHARS
            or not item.isprintable()
        ):
            raise _invalid(
                f"{name}[{i}]",
                f"must be a provider name of 1 to {MAX_PROVIDER_NAME_CHARS} printable chars",
            )
    return tuple(value)


def optional_bool(fields: Mapping[str, Any], name: str, *, default: bool) -> bool:
    """A boolean field (``default`` when absent or null)."""
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong_type(name, "a boolean")
    return value


def sort_of(value: object) -> tuple[str | None, bool]:
    """``sort`` as a string or ``{"by", "partition"}``: the key to sort by (None: no
    sort) and whether it sorts within each model only (``partition: "model"``)."""
    if value is None:
        return None, False
    within_model = False
    by = value
    if isinstance(value, dict):
        _known(value, frozenset({"by", "partition"}), "provider.sort")
        partition = value.get("partition")
        if partition not in (None, "model", "none"):
            raise _invalid("sort.partition", "must be 'model' or 'none'")
        within_model = partition == "model"
        by = value.get("by")
        if by is None:
            return None, False
    if by == "exacto":
        raise InvalidRequest(
            "'provider.sort' 'exacto' is not supported: SafeRouter has no tool-calling "
            "quality figures. Sort by 'price', 'latency' or 'throughput'.",
            param="provider.sort",
            code="unsupported_value",
        )
    if by not in SORTS:
        raise _invalid("sort", "must be 'price', 'latency' or 'throughput'")
    assert isinstance(by, str)
    return by, within_model


def max_price_micro(value: object) -> tuple[Decimal | None, Decimal | None]:
    """``max_price``'s prompt and completion limits, USD per million tokens, as micro-USD
    per million tokens (the catalog's unit). Its ``request``, ``image`` and ``audio``
    limits are checked and always met: SafeRouter charges nothing per request, image or
    audio unit (their tokens are prompt tokens, which ``prompt`` bounds)."""
    if value is None:
        return None, None
    fields = _object(value, "provider.max_price")
    _known(fields, frozenset(_MAX_PRICE_FIELDS), "provider.max_price")
    limits = {name: _usd(fields.get(name), f"max_price.{name}") for name in _MAX_PRICE_FIELDS}
    return _micro(limits["prompt"]), _micro(limits["completion"])


def p50_of(fields: Mapping[str, Any], name: str) -> float | None:
    """A preferred latency (s) or throughput (tokens/s): a number, or ``{"p50": …}``
    (other percentiles are not measured here)."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, dict):
        _known(value, frozenset(_PERCENTILES), f"provider.{name}")
        beyond = [p for p in _PERCENTILES[1:] if value.get(p) is not None]
        if beyond:
            raise InvalidRequest(
                f"'provider.{name}.{beyond[0]}' is not supported: SafeRouter measures "
                "medians (p50) only.",
                param=f"provider.{name}.{beyond[0]}",
                code="unsupported_value",
            )
        value = value.get("p50")
        name = f"{name}.p50"
        if value is None:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong_type(name, "a number")
    if value < 0:
        raise _invalid(name, "must not be negative")
    return float(value)


def _usd(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str):
        if _PRICE_TEXT.fullmatch(value) is None:
            raise _invalid(name, 'must be a price in USD per million tokens, like "0.5"')
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong_type(name, "a number (USD per million tokens)")
    if value < 0:
        raise _invalid(name, "must not be negative")
    return Decimal(repr(value))


def _micro(usd: Decimal | None) -> Decimal | None:
    return None if usd is None else usd * MICRO_PER_USD


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type"
        )
    return value


def _known(fields: Mapping[str, Any], known: frozenset[str], param: str) -> None:
    for key in fields:
        if key not in known:
            shown = key[:64]
            raise InvalidRequest(
                f"Unknown parameter: '{param}.{shown}'.",
                param=f"{param}.{shown}",
                code="unknown_parameter",
            )


def _wrong_type(name: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for 'provider.{name}': expected {expected}.",
        param=f"provider.{name}",
        code="invalid_type",
    )


def _invalid(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for 'provider.{name}': it {why}.",
        param=f"provider.{name}",
        code="invalid_value",
    )
