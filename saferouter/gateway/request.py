"""What the gateway decides on in a chat request, and the body it sends upstream (pure).

Only ``model``, ``messages`` (present, a non-empty list), ``stream``, ``stream_options``,
``n`` and the token limits are checked; every other field goes upstream untouched, so a
provider's own parameters (``thinking``, ``reasoning_effort``, ``tools`` …) work
without the gateway knowing them. What the request may cost rests on the decisions read
here: the larger token limit, ``n`` choices, and whether any input or output is not text
(its tokens are not bounded by the body's bytes; see :mod:`saferouter.accounting`). The
body must also survive being encoded again and ``model`` be a plain id
(:mod:`saferouter.client_input`): both end up in bytes and headers.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..catalog import Model
from ..client_input import parse_json_body, validate_model_id
from ..errors import InvalidRequest

_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")
MAX_CHOICES = 128  # OpenAI's own bound on ``n``
# Content parts whose tokens the body's bytes bound (assistant turns may carry a refusal).
_TEXT_PARTS = frozenset({"text", "refusal"})
_MEDIA_PARTS = frozenset({"image_url", "input_audio", "file"})


@attrs.frozen
class ChatRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None  # the larger of the limits sent: a provider may honour either
    payload: dict[str, Any]
    choices: int = 1  # ``n``
    # what is not text, e.g. ("messages[0].content[1] (image_url)",); empty for text only
    non_text: tuple[str, ...] = ()


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and check a ``POST /v1/chat/completions`` body. Raises InvalidRequest."""
    payload = parse_json_body(body)
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    model = payload.get("model")
    if model is None:
        raise InvalidRequest(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    validate_model_id(model, param="model")
    if "messages" not in payload or payload["messages"] is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = payload["messages"]
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise InvalidRequest(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    if not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest(
            "Each item of 'messages' must be an object.", param="messages", code="invalid_type"
        )
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    options = payload.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _wrong_type("stream_options", "an object", options)
        if not stream:
            raise InvalidRequest(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        flag = options.get("include_usage")
        if flag is not None and not isinstance(flag, bool):
            raise _wrong_type("stream_options.include_usage", "a boolean", flag)
        include_usage = bool(flag)
    max_tokens = None
    for name in _TOKEN_LIMITS:
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(name, "an integer", value)
        if value < 1:
            raise InvalidRequest(
                f"'{name}' must be at least 1, got {value}.", param=name, code="invalid_value"
            )
        # Both sent: a provider may honour either, so the larger bounds what it bills.
        max_tokens = value if max_tokens is None else max(max_tokens, value)
    choices = payload.get("n")
    if choices is not None:
        if isinstance(choices, bool) or not isinstance(choices, int):
            raise _wrong_type("n", "an integer", choices)
        if not 1 <= choices <= MAX_CHOICES:
            raise InvalidRequest(
                f"'n' must be between 1 and {MAX_CHOICES}, got {choices}.",
                param="n",
                code="invalid_value",
            )
    return ChatRequest(
        model=model,
        stream=bool(stream),
        include_usage=include_usage,
        max_tokens=max_tokens,
        payload=payload,
        choices=choices or 1,
        non_text=non_text_parts(payload),
    )


def non_text_parts(payload: dict[str, Any]) -> tuple[str, ...]:
    """Where a chat request asks for anything but text: content parts that are not
    text (images, audio, files, or a type unknown to us) and output ``modalities`` or
    ``audio`` beyond text. Their tokens are priced and counted in ways the request's
    bytes do not bound (an image URL is a few bytes and hundreds of tokens)."""
    found = []
    for m, message in enumerate(payload["messages"]):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for c, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in _TEXT_PARTS:
                # only a type we know is echoed: the message must not carry client text
                named = kind if kind in _MEDIA_PARTS else "an unknown type"
                found.append(f"messages[{m}].content[{c}] ({named})")
    modalities = payload.get("modalities")
    if isinstance(modalities, list) and any(x != "text" for x in modalities):
        found.append("'modalities' beyond text")
    if payload.get("audio") is not None:
        found.append("'audio' output")
    return tuple(found)


def encode_upstream_body(request: ChatRequest, model: Model) -> bytes:
    """The body sent to the provider: ``model`` rewritten to the upstream name, the
    model's ``body_defaults`` added where the client did not set them, all else kept."""
    payload = dict(request.payload)
    payload["model"] = model.upstream
    for name, value in model.body_defaults.items():
        payload.setdefault(name, value)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _wrong_type(param: str, expected: str, value: object) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)}.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
