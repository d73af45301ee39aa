"""OpenAI Chat Completions (``POST /v1/chat/completions``) as a dialect (pure).

Only ``model`` (or OpenRouter's ``models``), ``messages`` (present, a non-empty list),
``stream``, ``stream_options``, ``n`` and the token limits are checked; every other
field goes upstream untouched, so a provider's own parameters (``thinking``,
``reasoning_effort``, ``tools`` …) work without the gateway knowing them. What the
request may cost rests on the decisions read here: the larger token limit, ``n``
choices, and whether any input or output is not text (its tokens are not bounded by the
body's bytes; see :mod:`saferouter.accounting`). The body must also survive being
encoded again and ``model`` be a plain id (:mod:`saferouter.client_input`): both end up
in bytes and headers.

Upstream, a stream always asks for its usage (``stream_options.include_usage``: the
gateway bills streams); the usage-only chunk that brings is dropped on the way back
unless the client asked for it too (:class:`~.chat_watch.ChatWatch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...client_input import parse_token_limit, validate_model_id, wrong_type
from ...errors import ApiError, InvalidRequest, encode_error_body
from ...json_object import parse_json_object
from ..dialect import Api, ApiRequest, BodyFacts, NonText, stored_at_provider
from ..routing import parse_client_models
from ..upstream_body import UpstreamBody
from .chat_watch import ChatWatch, chat_body_facts

_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")
MAX_CHOICES = 128  # OpenAI's own bound on ``n``
# Content parts whose tokens the body's bytes bound (assistant turns may carry a refusal).
_TEXT_PARTS = frozenset({"text", "refusal"})
_MEDIA_PARTS = frozenset({"image_url", "input_audio", "file"})
JSON_HEADERS = {"Content-Type": "application/json"}


def parse_chat_request(body: bytes) -> ApiRequest:
    """Parse and check a ``POST /v1/chat/completions`` body. Raises InvalidRequest."""
    source = parse_json_object(body)
    payload = source.value
    model = payload.get("model")
    if model is None:
        if payload.get("models") is None:  # OpenRouter's ``models`` may stand for it
            raise InvalidRequest(
                "You must provide a model parameter.",
                param="model",
                code="missing_required_parameter",
            )
    else:
        validate_model_id(model, param="model")
    if "messages" not in payload or payload["messages"] is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = payload["messages"]
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array", messages)
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
        raise wrong_type("stream", "a boolean", stream)
    options = payload.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise wrong_type("stream_options", "an object", options)
        if not stream:
            raise InvalidRequest(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        flag = options.get("include_usage")
        if flag is not None and not isinstance(flag, bool):
            raise wrong_type("stream_options.include_usage", "a boolean", flag)
        include_usage = bool(flag)
    max_tokens = None
    for name in _TOKEN_LIMITS:
        value = parse_token_limit(payload, name)
        if value is not None:
            # Both sent: a provider may honour either, so the larger bounds what it bills.
            max_tokens = value if max_tokens is None else max(max_tokens, value)
    choices = payload.get("n")
    if choices is not None:
        if isinstance(choices, bool) or not isinstance(choices, int):
            raise wrong_type("n", "an integer", choices)
        if not 1 <= choices <= MAX_CHOICES:
            raise InvalidRequest(
                f"'n' must be between 1 and {MAX_CHOICES}, got {choices}.",
                param="n",
                code="invalid_value",
            )
    _refuse_stored_files(payload["messages"])
    client_models = parse_client_models(payload.get("models"))
    return ApiRequest(
        api=Api.CHAT,
        model=model,
        stream=bool(stream),
        include_usage=include_usage,
        max_tokens=max_tokens,
        payload=payload,
        choices=choices or 1,
        non_text=non_text_parts(payload),
        source=source,
        client_models=tuple(client_models) if client_models is not None else None,
    )


def _refuse_stored_files(messages: list[dict[str, Any]]) -> None:
    """A ``file`` part naming a ``file_id`` is refused for everyone: the file is stored
    at the provider under the gateway's account, which every key shares, and the
    gateway has no record of whose it is."""
    for m, message in enumerate(messages):
        content = message.get("content")
        for c, part in enumerate(content if isinstance(content, list) else ()):
            file = part.get("file") if isinstance(part, dict) else None
            if isinstance(file, dict) and file.get("file_id") is not None:
                raise stored_at_provider(
                    f"'messages[{m}].content[{c}]' names a file_id",
                    f"messages[{m}].content[{c}].file.file_id",
                    "Send the file's data instead.",
                )


def non_text_parts(payload: dict[str, Any]) -> tuple[NonText, ...]:
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
                found.append(NonText("messages", f"messages[{m}].content[{c}] ({named})"))
    modalities = payload.get("modalities")
    if isinstance(modalities, list) and any(x != "text" for x in modalities):
        found.append(NonText("modalities", "'modalities' beyond text"))
    if payload.get("audio") is not None:
        found.append(NonText("audio", "'audio' output"))
    return tuple(found)


def bearer_headers(api_key: str | None) -> list[tuple[bytes, bytes]]:
    """OpenAI's auth header for ``api_key`` (none for a provider that takes no key)."""
    return [(b"authorization", b"Bearer " + api_key.encode())] if api_key else []


def openai_error_reply(error: ApiError) -> tuple[int, dict[str, str], bytes]:
    """An error as OpenAI's clients get it: its status, headers and OpenAI-shaped body."""
    return error.status, {**error.headers, **JSON_HEADERS}, error.body()


class ChatDialect:
    """The chat completions dialect (see the module docstring)."""

    api = Api.CHAT
    path = "/v1/chat/completions"
    upstream_path = "/chat/completions"

    def parse(self, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
        """The chat request in ``body``; raises InvalidRequest."""
        return parse_chat_request(body)

    def upstream_body(self, request: ApiRequest) -> UpstreamBody:
        """The client's body, stripped, asking a stream for its usage, with the model's
        ``body_defaults`` (chat completions fields; see the module)."""
        if request.stream and not request.include_usage:
            options = request.payload.get("stream_options") or {}
            asked = {"stream_options": {**options, "include_usage": True}}
            return UpstreamBody.of(
                request.payload, request.source, replace=asked, model_defaults=True
            )
        return UpstreamBody.of(request.payload, request.source, model_defaults=True)

    def upstream_headers(
        self, request: ApiRequest, api_key: str | None
    ) -> list[tuple[bytes, bytes]]:
        """``Authorization: Bearer`` with the provider key."""
        return bearer_headers(api_key)

    def body_facts(self, body: bytes) -> BodyFacts:
        """Usage, id and finish reason of a completion; ParseError when not JSON."""
        return chat_body_facts(body)

    def watch(self, request: ApiRequest) -> ChatWatch:
        """A watch for one chat stream."""
        return ChatWatch()

    def error_reply(self, error: ApiError) -> tuple[int, dict[str, str], bytes]:
        """OpenAI's error shape."""
        return openai_error_reply(error)

    def stream_error(self, error: ApiError) -> bytes:
        """``data: {"error": …}``: the event OpenAI ends a failed stream with."""
        body = encode_error_body(error.message, error_type=error.error_type, code=error.code)
        return b"data: " + body + b"\n\n"


CHAT = ChatDialect()
