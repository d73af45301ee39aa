"""What the gateway decides on in a Responses API request (``POST /v1/responses``), pure.

Checked: ``model`` (required unless OpenRouter's ``models`` names the candidates),
``input`` (a string or a non-empty list of items), ``stream``, ``max_output_tokens`` (the
reservation's output bound), ``previous_response_id`` and ``store``. Every other field
goes upstream untouched (``instructions``, ``reasoning``, ``text``, ``tools`` …).

Refused for everyone, because each hands one tenant something that lives in the
operator's account at the provider, which every tenant shares:

* ``background: true`` — the response runs on after this request has ended and is
  billed then, outside any reservation, and is fetched through ``GET /v1/responses/{id}``,
  which the gateway does not serve: it would be spend nobody is charged for;
* ``conversation`` and ``item_reference`` input items — ids of state stored at the
  provider that the gateway has no record of: naming another tenant's would hand over
  their conversation (``previous_response_id`` is allowed because the gateway records
  which key produced each response id, :mod:`.previous_response`);
* ``prompt`` — a stored prompt template of the operator's provider account;
* a ``file_id`` in an input part — a file stored in that account (a code-execution
  output of another tenant's, say) — and built-in tools pointed at such state
  (``file_search`` over ``vector_store_ids``, ``code_interpreter`` in an existing
  container or with ``file_ids``).

What the body's bytes do not bound is listed in ``non_text`` (refused on a metered key,
:mod:`saferouter.gateway.books`): image, file and audio parts, items that are not text
(a computer screenshot, a built-in tool's call), and built-in tools (web search, file
search, code interpreter, image generation, computer use, MCP …), whose tokens and fees
the provider adds on its side.
"""

from __future__ import annotations

import re
from typing import Any

from ...client_input import parse_token_limit, validate_model_id, wrong_type
from ...errors import InvalidRequest
from ...json_object import parse_json_object
from ..dialect import Api, ApiRequest, NonText, stored_at_provider
from ..routing import parse_client_models

# Content parts whose tokens their bytes bound (assistant turns and reasoning echoed back).
_TEXT_PARTS = frozenset(
    {"input_text", "output_text", "refusal", "text", "summary_text", "reasoning_text"}
)
_MEDIA_PARTS = frozenset({"input_image", "input_file", "input_audio"})
# Input items made of text: a message (``type`` may be left out), a function or custom
# tool call and its output, and a reasoning item (its summary, or encrypted text).
_TEXT_ITEMS = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "reasoning",
    }
)
# Tools the client runs itself: their calls come back as text, nothing runs upstream.
_CLIENT_TOOLS = frozenset({"function", "custom"})
# Items and tools the provider runs or renders itself; named when echoed, since anything
# else is a string of the client's and is only called "an unknown type".
_KNOWN_OTHER = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_call",
        "file_search",
        "file_search_call",
        "code_interpreter",
        "code_interpreter_call",
        "image_generation",
        "image_generation_call",
        "computer_use",
        "computer_use_preview",
        "computer_call",
        "computer_call_output",
        "mcp",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "local_shell",
        "local_shell_call",
        "local_shell_call_output",
        "shell",
        "apply_patch",
    }
)
# Response ids as providers write them: resp_<hex/base32>, UUIDs, msg_…; nothing a
# header, a log line or a store column could choke on.
_RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_REFUSED = {
    "conversation": "Conversations are stored at the provider under the gateway's account, "
    "which every key shares, and the gateway keeps no record of whose they are; "
    "chain turns with 'previous_response_id' instead.",
    "prompt": "Stored prompt templates belong to the gateway operator's provider account; "
    "send the prompt's text in 'instructions' and 'input' instead.",
}


def parse_responses_request(body: bytes) -> ApiRequest:
    """Parse and check a ``POST /v1/responses`` body. Raises InvalidRequest, nothing else."""
    source = parse_json_object(body)
    payload = source.value
    client_models = parse_client_models(payload.get("models"))
    model = payload.get("model")
    if model is None and client_models is None:
        raise InvalidRequest(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    if model is not None:
        validate_model_id(model, param="model")
    input_items = _checked_input(payload)
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean", stream)
    if payload.get("background") is not None:
        if not isinstance(payload["background"], bool):
            raise wrong_type("background", "a boolean", payload["background"])
        if payload["background"]:
            raise InvalidRequest(
                "Background responses are not served: they run on and are billed after "
                "the request ends, outside what the gateway can reserve and charge. Send "
                "the request without 'background' (stream it for a long response).",
                param="background",
                code="unsupported_parameter",
            )
    for name, why in _REFUSED.items():
        if payload.get(name) is not None:
            raise InvalidRequest(
                f"'{name}' is not supported by this gateway. {why}",
                param=name,
                code="unsupported_parameter",
            )
    _refuse_stored_tools(payload.get("tools"))
    store = payload.get("store")
    if store is not None and not isinstance(store, bool):
        raise wrong_type("store", "a boolean", store)
    return ApiRequest(
        api=Api.RESPONSES,
        model=model,
        stream=bool(stream),
        max_tokens=parse_token_limit(payload, "max_output_tokens"),
        payload=payload,
        non_text=non_text_parts(input_items, payload.get("tools")),
        source=source,
        client_models=tuple(client_models) if client_models is not None else None,
        previous_response_id=_response_id(payload.get("previous_response_id")),
    )


def _checked_input(payload: dict[str, Any]) -> list[Any]:
    """``input`` as a list of items (a string is one user message); each item an object,
    none an ``item_reference``."""
    if payload.get("input") is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    value = payload["input"]
    if isinstance(value, str):
        return []  # text: its bytes bound its tokens
    if not isinstance(value, list):
        raise wrong_type("input", "a string or an array", value)
    if not value:
        raise InvalidRequest(
            "'input' must contain at least one item.", param="input", code="empty_array"
        )
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"Invalid type for 'input[{i}]': expected an object.",
                param=f"input[{i}]",
                code="invalid_type",
            )
        if item.get("type") == "item_reference":
            raise stored_at_provider(
                f"'input[{i}]' is an item_reference",
                f"input[{i}]",
                "Send the item itself, or use 'previous_response_id'.",
            )
        for field in ("content", "output"):
            parts = item.get(field)
            for p, part in enumerate(parts if isinstance(parts, list) else ()):
                if isinstance(part, dict) and part.get("file_id") is not None:
                    raise stored_at_provider(
                        f"'input[{i}].{field}[{p}]' names a file_id",
                        f"input[{i}].{field}[{p}].file_id",
                        "Send the file's data or URL instead.",
                    )
    return value


def _refuse_stored_tools(tools: object) -> None:
    """A built-in tool pointed at state stored in the operator's provider account (a
    ``file_search`` over vector stores, a ``code_interpreter`` in an existing container
    or with files) is refused for everyone, as ``file_id`` parts are."""
    for t, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            continue
        container = tool.get("container")
        stored = (tool.get("type") == "file_search" and tool.get("vector_store_ids")) or (
            tool.get("type") == "code_interpreter"
            and (
                isinstance(container, str)
                or (isinstance(container, dict) and container.get("file_ids"))
            )
        )
        if stored:
            raise stored_at_provider(
                f"'tools[{t}]' names vector stores, a container or files", f"tools[{t}]"
            )


def _response_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _RESPONSE_ID.fullmatch(value) is None:
        raise InvalidRequest(
            "'previous_response_id' must be the id of an earlier response "
            "(1 to 128 letters, digits, '_' or '-').",
            param="previous_response_id",
            code="invalid_value",
        )
    return value


def non_text_parts(items: list[Any], tools: object) -> tuple[NonText, ...]:
    """Where a Responses request asks for anything its bytes do not bound: input items
    that are not text, content parts that are not text (in messages and in function call
    outputs), and tools the provider runs itself (anything but ``function``/``custom``)."""
    found = []
    for i, item in enumerate(items):
        kind = _type_of(item, default="message")  # a message may leave its type out
        if kind not in _TEXT_ITEMS:
            found.append(NonText("input", f"input[{i}] ({_named(kind)})"))
            continue
        for field in ("content", "output"):
            parts = item.get(field)
            if not isinstance(parts, list):
                continue
            for p, part in enumerate(parts):
                part_kind = _type_of(part)
                if part_kind not in _TEXT_PARTS:
                    named = part_kind if part_kind in _MEDIA_PARTS else "an unknown type"
                    found.append(NonText("input", f"input[{i}].{field}[{p}] ({named})"))
    if isinstance(tools, list):
        for t, tool in enumerate(tools):
            kind = _type_of(tool)
            if kind not in _CLIENT_TOOLS:
                found.append(NonText("tools", f"tools[{t}] ({_named(kind)})"))
    return tuple(found)


def _type_of(value: object, default: str | None = None) -> str | None:
    """An object's ``type`` when it is a string (anything else is no known type)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type", default)
    return kind if isinstance(kind, str) else None


def _named(kind: str | None) -> str:
    """A type as echoed back: a known one by name, or any dated variant of one
    (``web_search_preview_2025_03_11``); anything else is the client's text."""
    if kind is not None and re.sub(r"_\d{4}_\d{2}_\d{2}$", "", kind) in _KNOWN_OTHER:
        return kind
    return "an unknown type"
