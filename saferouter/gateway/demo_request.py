"""Reading a client's request for the demo (pure): the pieces every API's demo reads
the same way, defensively — a request reaches the demo as the client wrote it, so a
field of the wrong type is passed over, never trusted (the demo runs in the gateway's
worker: an exception here would be the gateway's 500)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .demo_answer import JsonOutput, ToolMode, ToolResult

# OpenAI's tool_choice words (chat completions and Responses)
OPENAI_TOOL_CHOICES = {"none": ToolMode.NONE, "auto": ToolMode.AUTO, "required": ToolMode.REQUIRED}


@attrs.frozen
class Refusal:
    """A request the demo refuses as its provider would: a 400 naming the field."""

    param: str
    message: str


def unknown_tool_choice(accepted: str) -> Refusal:
    """A ``tool_choice`` the API does not define (a typo such as ``"requried"``, a
    wrong shape, a hosted tool's type: the demo has none): refused as the provider
    refuses it, not served as ``auto``."""
    return Refusal("tool_choice", f"tool_choice must be {accepted}")


def openai_tool_choice(
    value: object, name_of: Callable[[dict[str, Any]], object], named: str
) -> tuple[ToolMode, str | None] | Refusal:
    """OpenAI's ``tool_choice``: absent (``auto``), ``none`` / ``auto`` / ``required``,
    or a ``{"type": "function", …}`` object forcing the tool ``name_of`` finds in it
    (chat nests the name in ``function``, Responses does not; ``named`` shows which)."""
    if value is None:
        return ToolMode.AUTO, None
    if isinstance(value, str) and value in OPENAI_TOOL_CHOICES:
        return OPENAI_TOOL_CHOICES[value], None
    if isinstance(value, dict) and value.get("type") == "function":
        name = name_of(value)
        if isinstance(name, str):
            return ToolMode.REQUIRED, name
    return unknown_tool_choice(f"none, auto, required or {named}")


def dicts_in(value: object) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is a list (anything else holds none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text_of(content: object) -> str:
    """Text of a message's content: a string, or the text parts of a parts list."""
    if isinstance(content, str):
        return content
    return " ".join(p["text"] for p in dicts_in(content) if isinstance(p.get("text"), str))


def positive_int(value: object) -> int | None:
    """A token limit: a positive integer, or None (no limit) for anything else."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 else None


def named_results(
    calls: Iterable[tuple[object, object]], results: Iterable[tuple[object, str]]
) -> tuple[ToolResult, ...]:
    """Tool results named by the calls they answer: ``calls`` pairs each call's id with
    its tool's name, ``results`` each answered id with the result's text. An id or a
    name that is not a string names nothing."""
    names = {i: n for i, n in calls if isinstance(i, str) and isinstance(n, str)}
    return tuple(
        ToolResult(names.get(i) if isinstance(i, str) else None, text) for i, text in results
    )


def json_output(form: object, schema: object, *, param: str) -> JsonOutput | Refusal | None:
    """The output format ``form`` asks for: text (None), any JSON object, or JSON valid
    for ``schema`` (where the API keeps it); a format the demo cannot honour is refused."""
    kind = form.get("type") if isinstance(form, dict) else None
    if form is None or kind == "text":
        return None
    if kind == "json_object":
        return JsonOutput()
    if kind == "json_schema":
        if isinstance(schema, dict):
            return JsonOutput(schema)
        return Refusal(param, f"{param}: a json_schema format needs its schema (an object)")
    return Refusal(param, f"{param}: the type {kind!r} is not text, json_object or json_schema")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the user's last message ("" when there is none)."""
    said = (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user")
    return next(said, "")


def trailing(
    items: list[dict[str, Any]], wanted: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The run of ``wanted`` items that ends ``items`` (the tool results a turn ends with)."""
    first = len(items)
    while first and wanted(items[first - 1]):
        first -= 1
    return items[first:]
