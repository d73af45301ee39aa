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
from ..client_input import validate_model_id
from ..errors import InvalidRequest
from ..json_object import JsonObject, parse_json_object

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
    # the body as sent and where its members sit: what UpstreamBody splices
    source: JsonObject | None = attrs.field(default=None, repr=False, eq=False)


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and check a ``POST /v1/chat/completions`` body. Raises InvalidRequest."""
    source = parse_json_object(body)
    payload = source.value
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
        source=source,
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


@attrs.frozen
class UpstreamBody:
    """The body sent upstream for one chat request; built once, asked per attempt.

    What the upstream reads is the client's body with three changes: ``model`` is the
    served model's upstream name, the client's fallback list ``models`` is gone (the
    gateway's business, not the provider's), and a stream asks for usage whatever the
    client asked (``stream_options.include_usage``: the gateway bills streams); then the
    model's ``body_defaults`` are added where the client did not set them.

    Those changes are spliced into the client's bytes, which stay exactly as sent
    elsewhere (key order, escapes, number forms): an attempt costs one join, not one
    encode of the whole prompt. A body the reader would not splice (see
    :func:`~saferouter.json_object.parse_json_object`: a duplicate key, an escaped key,
    not UTF-8) is encoded from its parsed value instead, which is what the gateway read.
    """

    payload: dict[str, Any] = attrs.field(repr=False)  # what the upstream reads, but model
    # the client's bytes before ``model``'s value, after it up to the end of the last
    # member (where defaults go), and the rest; None: encode ``payload``
    pieces: tuple[bytes, bytes, bytes] | None = attrs.field(repr=False)

    @classmethod
    def of(cls, chat: ChatRequest) -> UpstreamBody:
        """The upstream body of ``chat`` (parsed by :func:`parse_chat_request`)."""
        payload = {k: v for k, v in chat.payload.items() if k != "models"}
        ask_usage = chat.stream and not chat.include_usage
        if ask_usage:
            options = payload.get("stream_options") or {}
            payload["stream_options"] = {**options, "include_usage": True}
        source = chat.source
        if source is None or source.members is None:
            return cls(payload, None)
        members = source.members
        index = {m.key: i for i, m in enumerate(members)}
        end = members[-1].end
        # (start, end, replacement) in the client's bytes; None marks where a per-attempt
        # piece goes (the model's name, then the defaults)
        edits: list[tuple[int, int, bytes | None]] = []
        if "models" in index:
            i = index["models"]
            # with one comma: the one before it, or the one after it when it is first
            # (``model`` and ``messages`` are there too, so it is never alone)
            if i:
                edits.append((members[i - 1].end, members[i].end, b""))
            else:
                edits.append((members[0].start, members[1].start, b""))
        if ask_usage:
            options_json = _encode(payload["stream_options"])
            if "stream_options" in index:  # an object or null: replaced, the client's
                sent = members[index["stream_options"]]  # other options kept in it
                edits.append((sent.value_start, sent.end, options_json))
            else:
                edits.append((end, end, b',"stream_options":' + options_json))
        model = members[index["model"]]
        edits.append((model.value_start, model.end, None))
        edits.append((end, end, None))
        return cls(payload, _splice(source.body, edits))

    def for_model(self, model: Model) -> bytes:
        """The bytes an attempt at ``model`` sends."""
        if self.pieces is None:
            payload = {**self.payload, "model": model.upstream}
            for name, value in model.body_defaults.items():
                payload.setdefault(name, value)
            return _encode(payload)
        head, middle, tail = self.pieces
        defaults = b"".join(
            b"," + _encode(name) + b":" + _encode(value)
            for name, value in model.body_defaults.items()
            if name not in self.payload
        )
        return b"".join((head, _encode(model.upstream), middle, defaults, tail))


def _splice(body: bytes, edits: list[tuple[int, int, bytes | None]]) -> tuple[bytes, bytes, bytes]:
    """``body`` with the edits made (none overlapping; at one offset, in list order), cut
    into three pieces where the two ``None`` edits are."""
    pieces, current, position = [], [], 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):  # stable
        current.append(body[position:start])
        if replacement is None:
            pieces.append(b"".join(current))
            current = []
        else:
            current.append(replacement)
        position = end
    current.append(body[position:])
    pieces.append(b"".join(current))
    head, middle, tail = pieces
    return head, middle, tail


# one encoder: json.dumps with arguments builds a new one per call (µs per small value)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(value: object) -> bytes:
    return _ENCODER.encode(value).encode()


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
