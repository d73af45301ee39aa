"""The demo's made-up values are valid for their schema: checked by pydantic (the
validator the openai SDK's ``pydantic_function_tool`` and ``parse`` use) on the schemas
pydantic itself emits, and by hand on the keywords pydantic does not write."""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from typing import Annotated, Any, Literal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.gateway.demo_schema import MAX_DEPTH, MAX_VALUES, example_of


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Place(pydantic.BaseModel):
    city: Annotated[str, pydantic.Field(min_length=20, max_length=30)]
    country_code: Annotated[str, pydantic.Field(max_length=2)]


class Forecast(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    place: Place
    unit: Unit
    days: Annotated[int, pydantic.Field(ge=3, le=10, multiple_of=4)]
    threshold: Annotated[float, pydantic.Field(gt=-5.5, lt=-2)]
    mode: Literal["fast", "slow"]
    when: dt.date
    at: dt.datetime
    tags: list[str]
    stops: Annotated[list[Place], pydantic.Field(min_length=2)]
    note: str | None = None
    scores: dict[str, int] = {}
    pair: tuple[int, str]


class Tree(pydantic.BaseModel):
    name: str
    children: list[Tree]
    parent: Tree | None


@pytest.mark.parametrize("model", [Forecast, Place, Tree])
def test_pydantic_accepts_the_value_made_for_its_own_schema(
    model: type[pydantic.BaseModel],
) -> None:
    schema = model.model_json_schema()
    value = example_of(schema)
    model.model_validate_json(json.dumps(value))  # raises when it is not valid
    assert example_of(schema) == value  # deterministic


def test_every_property_near_the_top_and_only_the_required_ones_below() -> None:
    value = example_of(Tree.model_json_schema())
    assert set(value) == {"name", "children", "parent"}
    child = value["children"][0]
    assert child["children"] == [] or set(child["children"][0]) <= {"name", "children", "parent"}
    # a node that requires a node cannot be finite: the value still ends
    endless = {
        "$ref": "#/$defs/N",
        "$defs": {
            "N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"]}
        },
    }
    depth, node = 0, example_of(endless)
    while isinstance(node, dict):
        node, depth = node["n"], depth + 1
    assert node is None and depth <= MAX_DEPTH + 1


@pytest.mark.parametrize(
    ("schema", "check"),
    [
        ({"const": 7}, lambda v: v == 7),
        ({"type": "string", "enum": ["b", "a"]}, lambda v: v == "b"),
        ({"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 4}]}, lambda v: v == 4),
        ({"oneOf": [{"type": "boolean"}]}, lambda v: v is True),
        (
            {
                "allOf": [
                    {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "string"}}},
                ]
            },
            lambda v: isinstance(v["a"], int) and isinstance(v["b"], str),
        ),
        (
            {"type": ["null", "array"], "items": {"type": "number"}},
            lambda v: isinstance(v, list) and all(isinstance(x, int | float) for x in v),
        ),
        ({"type": "array", "maxItems": 0}, lambda v: v == []),
        ({"type": "array", "minItems": 3, "items": {"type": "string"}}, lambda v: len(v) == 3),
        (
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "boolean"}],
                "items": False,
            },
            lambda v: isinstance(v[0], int) and v[1] is True and len(v) == 2,
        ),
        ({"type": "string", "format": "email"}, lambda v: re.fullmatch(r"[^@]+@[^@]+\.\w+", v)),
        ({"type": "string", "format": "uuid"}, lambda v: len(v) == 36),
        ({"type": "string", "minLength": 40}, lambda v: len(v) >= 40),
        ({"type": "string", "maxLength": 3}, lambda v: len(v) <= 3),
        ({"type": "integer", "exclusiveMaximum": -3}, lambda v: v < -3),
        ({"type": "number", "exclusiveMinimum": 0.5, "maximum": 0.75}, lambda v: 0.5 < v <= 0.75),
        (
            {"$ref": "#/definitions/x", "definitions": {"x": {"type": "boolean"}}},
            lambda v: v is True,
        ),
        ({"$ref": "#/nowhere"}, lambda v: v == "demo"),
        ({"properties": {"q": {}}, "required": ["q", "r"]}, lambda v: set(v) == {"q", "r"}),
        ({}, lambda v: v == "demo"),
        (["not", "a", "schema"], lambda v: v == "demo"),
    ],
)
def test_keywords_pydantic_does_not_write(schema: Any, check: Any) -> None:
    assert check(example_of(schema)), example_of(schema)


@given(
    low=st.integers(-1000, 1000),
    width=st.integers(0, 1000),
    step=st.integers(1, 50),
    exclusive=st.booleans(),
)
def test_an_integer_within_any_satisfiable_bounds(
    low: int, width: int, step: int, exclusive: bool
) -> None:
    high = low + width
    if not any(v % step == 0 for v in range(low + exclusive, high - exclusive + 1)):
        return  # no integer satisfies these bounds
    bounds = (
        {"exclusiveMinimum": low, "exclusiveMaximum": high}
        if exclusive
        else {"minimum": low, "maximum": high}
    )
    value = example_of({"type": "integer", "multipleOf": step, **bounds})
    assert isinstance(value, int) and value % step == 0
    assert (low < value < high) if exclusive else (low <= value <= high)


def _values(value: Any) -> int:
    """How many JSON values ``value`` holds, itself included."""
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    return 1


def _tree(levels: int) -> dict[str, Any]:
    """Each level requires two children of the next: 2**levels values, unbounded."""
    defs = {
        f"L{i}": {
            "type": "object",
            "properties": {"a": {"$ref": f"#/$defs/L{i + 1}"}, "b": {"$ref": f"#/$defs/L{i + 1}"}},
            "required": ["a", "b"],
        }
        for i in range(levels)
    }
    return {"$ref": "#/$defs/L0", "$defs": {**defs, f"L{levels}": {"type": "integer"}}}


@pytest.mark.parametrize(
    "schema",
    [
        {"anyOf": [{"$ref": "#"}]},  # a reference cycle through a combinator
        {"allOf": [{"$ref": "#"}, {"type": "object"}]},
        {"$ref": "#/a", "a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}},
        _tree(40),  # 2**40 values if followed
        {"type": "array", "minItems": 10**9, "items": {"type": "array", "minItems": 10**9}},
        {"type": "string", "minLength": 10**12},
        {"type": "number", "minimum": 10**400, "multipleOf": 1e-300},
        {"type": "integer", "exclusiveMinimum": float("inf"), "maximum": float("nan")},
        {"type": "number", "minimum": 0.5, "multipleOf": 5e-324},
    ],
)
def test_a_hostile_schema_costs_bounded_work(schema: dict[str, Any]) -> None:
    """Past MAX_VALUES every value is null: what was begun is finished, nothing more."""
    value = example_of(schema)
    assert _values(value) <= 2 * MAX_VALUES
    assert len(json.dumps(value)) < 1_000_000


_SCHEMAS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "properties",
                    "required",
                    "items",
                    "prefixItems",
                    "anyOf",
                    "oneOf",
                    "allOf",
                    "$ref",
                    "$defs",
                    "enum",
                    "const",
                    "default",
                    "minItems",
                    "maxItems",
                    "minLength",
                    "maxLength",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "multipleOf",
                    "format",
                    "x",
                    "object",
                    "array",
                ]
            ),
            inner
            | st.sampled_from(["object", "array", "string", "integer", "number", "#", "#/$defs/x"]),
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(_SCHEMAS)
def test_any_json_as_a_schema_gives_a_json_value(schema: object) -> None:
    value = example_of(schema)
    json.dumps(value)  # encodable: the demo sends it
    assert _values(value) <= 2 * MAX_VALUES
