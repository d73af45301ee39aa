"""What the gateway decides on in a chat request, and the body it sends upstream (pure).

Only ``model``, ``messages`` (present, a non-empty list), ``stream``, ``stream_options``
and the token limits are checked; every other field goes upstream untouched, so a
provider's own parameters (``thinking``, ``reasoning_effort``, ``tools`` …) work
without the gateway knowing them. The body must also survive being encoded again and
``model`` be a plain id (:mod:`saferouter.client_input`): both end up in bytes and headers.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..catalog import Model
from ..client_input import parse_json_body, validate_model_id
from ..errors import InvalidRequest

_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")


@attrs.frozen
class ChatRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    payload: dict[str, Any]


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
        max_tokens = value if max_tokens is None else min(max_tokens, value)
    return ChatRequest(
        model=model,
        stream=bool(stream),
        include_usage=include_usage,
        max_tokens=max_tokens,
        payload=payload,
    )


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
