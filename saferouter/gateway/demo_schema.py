"""A value valid for a JSON Schema, made up deterministically (pure): the demo provider's
tool-call arguments and ``json_schema`` answers, shared by every API's demo.

:func:`example_of` covers what function-calling schemas use (the OpenAI strict subset
and what pydantic emits): ``type`` (one or a list), ``const``, ``enum``, ``default``,
``anyOf`` / ``oneOf`` / ``allOf``, local ``$ref`` (``#/$defs/…``, ``#/definitions/…``),
object ``properties`` / ``required``, array ``items`` / ``prefixItems`` /
``minItems``, string ``minLength`` / ``maxLength`` / ``format``, number bounds and
``multipleOf``. ``pattern`` is not honoured (no regex inverter: the demo states
this rather than carrying one); a schema that is not an object counts as "anything".

Optional properties, extra array items and non-null ``anyOf`` branches are chosen
only near the top, so a recursive schema (a tree whose nodes hold nodes) still ends;
what the schema requires is always written. Same schema → same value.
"""

from __future__ import annotations

import math
from typing import Any

# Optional properties are filled in only this many levels deep: past it a value holds
# what its schema requires and nothing more, so recursive schemas end.
OPTIONAL_DEPTH = 2
# A schema requiring nesting past this is unsatisfiable by a finite value (a node that
# requires a node): its innermost value is cut to null rather than recursing forever.
# The same bound holds for chains of anyOf / allOf / $ref (``{"anyOf": [{"$ref": "#"}]}``).
MAX_DEPTH = 32
# The demo runs inside the gateway's worker, on schemas clients write: the work one
# value takes is bounded, so no schema can hang or bloat the worker (twenty levels each
# requiring two children would be a million values; ``minItems: 10**9`` a billion).
MAX_VALUES = 2_000
MAX_ITEMS = 64
MAX_STRING_CHARS = 4_096

_FORMATS = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00Z",
    "duration": "PT1H",
    "email": "demo@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_LARGEST = 1e300  # a schema's numbers are honoured up to here, far from overflow
_GRID_STEPS = 1e15  # a multipleOf grid is honoured up to this many steps from zero
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def example_of(schema: object, *, name: str = "value") -> Any:
    """A JSON value valid for ``schema`` (a JSON Schema object); ``name`` (the property
    it fills) words its strings. Never raises: what it cannot honour it leaves out."""
    root = schema if isinstance(schema, dict) else {}
    return _Maker(root).make(root, name, 0)


class _Maker:
    def __init__(self, root: dict[str, Any]) -> None:
        self._root = root
        self._made = 0

    def make(self, schema: object, name: str, depth: int, hops: int = 0) -> Any:
        """A value for ``schema`` at ``depth`` (nesting of values) after ``hops``
        combinators or references resolved in a row."""
        self._made += 1
        if depth > MAX_DEPTH or hops > MAX_DEPTH or self._made > MAX_VALUES:
            return None  # past what any finite, sane value needs
        if not isinstance(schema, dict):
            return "demo"
        schema = self._resolved(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        if "default" in schema:
            return schema["default"]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                # near the top a branch that is not null shows more of the shape;
                # deeper, null (where allowed) ends a recursive schema
                shallow = depth < OPTIONAL_DEPTH
                chosen = next((o for o in options if _is_null(o) != shallow), options[0])
                merged = {**_without(schema, key), **self._resolved(chosen)}
                return self.make(merged, name, depth, hops + 1)
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = _without(schema, "allOf")
            for part in parts:
                merged = _merge(merged, self._resolved(part))
            return self.make(merged, name, depth, hops + 1)
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "string":
            return _string(schema, name)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return "demo"

    def _resolved(self, schema: object) -> dict[str, Any]:
        """``schema`` with a local ``$ref`` replaced by its target (siblings kept)."""
        if not isinstance(schema, dict):
            return {}
        seen: set[str] = set()
        while isinstance(ref := schema.get("$ref"), str) and ref not in seen:
            seen.add(ref)
            target = self._pointer(ref)
            schema = {**target, **_without(schema, "$ref")}
        return schema

    def _pointer(self, ref: str) -> dict[str, Any]:
        """The root's sub-schema at ``#/a/b`` (RFC 6901 escapes), or {} (anything)."""
        if not ref.startswith("#"):
            return {}
        node: Any = self._root
        for token in filter(None, ref[1:].split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = _dict(schema.get("properties"))
        required = _names(schema.get("required"))
        names = list(properties) if depth < OPTIONAL_DEPTH else []
        names += [r for r in required if r not in names]
        return {key: self.make(properties.get(key, {}), key, depth + 1) for key in names}

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        min_items = _int(schema.get("minItems")) or 0
        max_items = _int(schema.get("maxItems"))
        count = max(min_items, len(prefix) if depth < OPTIONAL_DEPTH else 0)
        if count == 0 and depth < OPTIONAL_DEPTH and schema.get("items") is not False:
            count = 1  # one item shows the shape
        count = min(count, MAX_ITEMS if max_items is None else max_items, MAX_ITEMS)
        item = _singular(name)
        return [
            self.make(prefix[i] if i < len(prefix) else schema.get("items", {}), item, depth + 1)
            for i in range(count)
        ]


def _string(schema: dict[str, Any], name: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), f"demo {name}".replace("_", " "))
    min_length = _int(schema.get("minLength")) or 0
    max_length = _int(schema.get("maxLength"))
    if len(text) < min_length:
        text += "x" * (min(min_length, MAX_STRING_CHARS) - len(text))
    return text if max_length is None else text[:max_length]


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """The least value the bounds allow at or above 1 (or below the maximum), on the
    ``multipleOf`` grid when there is one."""
    low = _bound(schema, "minimum", "exclusiveMinimum", +1, integer)
    high = _bound(schema, "maximum", "exclusiveMaximum", -1, integer)
    value: float = 1 if low is None else max(low, 1)
    if high is not None and value > high:
        value = high if low is None else max(high, low)
    step = _finite(schema.get("multipleOf"))
    # a grid finer than a float can count to from here is not honoured (no overflow)
    if step is not None and step > 0 and abs(value) / step < _GRID_STEPS:
        value = math.ceil(value / step) * step
        if high is not None and value > high:
            value = math.floor(high / step) * step
    return int(value) if integer or float(value).is_integer() else value


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, side: int, integer: bool
) -> float | None:
    """The inclusive bound on one side, an exclusive one moved just inside."""
    value = _finite(schema.get(inclusive))
    if value is not None:
        return math.ceil(value) if integer and side > 0 else math.floor(value) if integer else value
    value = _finite(schema.get(exclusive))
    if value is not None:
        if integer:
            return math.floor(value) + 1 if side > 0 else math.ceil(value) - 1
        return value + side * max(abs(value) * 1e-9, 1e-9)
    return None


def _finite(value: object) -> float | None:
    """A JSON number well inside a float's range (not a bool, a NaN, an infinity or a
    thousand-digit integer); None for anything else, which is then not honoured."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if -_LARGEST < value < _LARGEST else None


def _kind(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        # the most telling type listed: an object over a null
        return next((k for k in _TYPE_ORDER if k in kind), None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two ``allOf`` branches as one: their properties and required names joined."""
    merged = {**a, **b}
    properties = {**_dict(a.get("properties")), **_dict(b.get("properties"))}
    if properties:
        merged["properties"] = properties
    required = [*_names(a.get("required")), *_names(b.get("required"))]
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _is_null(schema: object) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 1 else name
