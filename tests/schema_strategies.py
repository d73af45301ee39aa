"""Hypothesis strategies from a JSON Schema (draft 2020-12), enough of it for the OpenAI
chat schemas in ../shared/testdata/openai: ``$ref``, ``allOf`` / ``anyOf`` / ``oneOf``,
``enum``, ``type`` (one or a list), object ``properties`` / ``required``, array
``items`` / ``minItems`` / ``maxItems``, and numeric ``minimum`` / ``maximum``.

Values follow the schema's shape, so they pass the gateway's first checks and reach its
deeper paths; the strings inside come from a strategy the caller picks (hostile text).
Recursion is cut at ``max_depth`` with ``null``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Json = Any
MAX_ARRAY = 3


def from_schema(
    schema: dict[str, Any],
    defs: dict[str, Any],
    *,
    strings: st.SearchStrategy[str],
    max_depth: int = 6,
) -> st.SearchStrategy[Json]:
    """Values of ``schema``; ``#/$defs/…`` references resolve in ``defs``."""
    return _Builder(defs, strings, max_depth).build(schema, 0)


class _Builder:
    def __init__(self, defs: dict[str, Any], strings: st.SearchStrategy[str], depth: int):
        self.defs = defs
        self.strings = strings
        self.max_depth = depth

    def build(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Json]:
        if depth > self.max_depth:
            return st.none()
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            return st.deferred(lambda: self.build(self.defs[name], depth + 1))
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        if "allOf" in schema:
            parts = [self.build(part, depth + 1) for part in schema["allOf"]]
            return st.tuples(*parts).map(_merge)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return st.one_of([self.build(part, depth + 1) for part in schema[key]])
        kinds = schema.get("type")
        if isinstance(kinds, list):
            return st.one_of([self.build({**schema, "type": kind}, depth) for kind in kinds])
        return self._typed(schema, kinds, depth)

    def _typed(self, schema: dict[str, Any], kind: str | None, depth: int) -> Any:
        if kind == "object" or (kind is None and "properties" in schema):
            properties = schema.get("properties", {})
            required = set(schema.get("required", ()))
            return st.fixed_dictionaries(
                {k: self.build(v, depth + 1) for k, v in properties.items() if k in required},
                optional={
                    k: self.build(v, depth + 1) for k, v in properties.items() if k not in required
                },
            )
        if kind == "array":
            items = self.build(schema.get("items", {}), depth + 1)
            low = schema.get("minItems", 0)
            high = min(schema.get("maxItems", MAX_ARRAY), max(low, MAX_ARRAY))
            return st.lists(items, min_size=low, max_size=high)
        if kind == "string":
            return self.strings
        if kind == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "number":
            return st.floats(
                schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
            )
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return st.none()  # no type: any value; null is one


def _merge(parts: tuple[Json, ...]) -> Json:
    merged: dict[str, Json] = {}
    for part in parts:
        if isinstance(part, dict):
            merged.update(part)
    return merged
