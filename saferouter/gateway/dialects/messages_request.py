"""What the gateway decides on in an Anthropic Messages request (pure).

``POST /v1/messages`` (docs.anthropic.com/en/api/messages). Only what the gateway acts
on is checked, with Anthropic's own wording where a client may know it
(``max_tokens: Field required``): ``model`` (unless OpenRouter's ``models`` is given),
``messages`` (a non-empty list of objects), ``max_tokens`` (required by this API: it
bounds the output, so the reservation rests on it), ``stream``, and the
``anthropic-version`` / ``anthropic-beta`` headers passed on upstream. ``system``,
``tools``, ``thinking``, ``tool_choice``, ``metadata`` … go upstream untouched.

What the body's bytes do not bound is listed in ``non_text`` (a metered key is refused
such a request, 400 ``unsupported_content``, see :mod:`saferouter.gateway.books`):

* content blocks that are not text — ``image``, ``document`` (a PDF is priced by its
  pages' images), or a block type unknown here — in ``messages`` (and inside a
  ``tool_result``) and in ``system``;
* server tools: a tool with a ``type`` other than ``custom`` (``web_search_*``,
  ``code_execution_*``, ``advisor_*``, ``bash_*`` …) runs searches, containers or other
  models at fees, or adds a system prompt, that no byte of the request bounds;
* ``mcp_servers`` (remote tools, their results' tokens unbounded) and
  ``context_management`` (compaction runs another model turn over the context) — unless
  its every edit only clears earlier thinking or tool results, which shrinks the prompt
  the bytes bound: Claude Code sends ``clear_thinking_…`` with every request, and would
  otherwise be refused on every metered key.

Refused for everyone: ``container``, the id of a code-execution container kept at the
provider under the operator's account, which every key shares, and a content block
naming a file stored there (a ``file`` source, ``container_upload``); the gateway has no
record of whose they are, so naming one would hand over another tenant's files (the
Responses API's ``conversation`` and ``file_id`` are refused for the same reason).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from ...client_input import validate_model_id
from ...errors import InvalidRequest
from ...json_object import parse_json_object
from ..dialect import Api, ApiRequest, NonText, stored_at_provider
from ..routing import parse_client_models

DEFAULT_ANTHROPIC_VERSION = b"2023-06-01"
MAX_VERSION_BYTES = 64
MAX_BETA_BYTES = 1024  # every anthropic-beta value together (a comma-separated list)
# visible ASCII, and inner spaces ("a, b"): nothing a header or a log line cannot hold
_HEADER_VALUE = re.compile(rb"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# blocks whose tokens their bytes bound (a tool call's input, a thinking block's text or
# its encrypted data: a token is never less than a byte)
_TEXT_BLOCKS = frozenset(
    {"text", "tool_use", "tool_result", "thinking", "redacted_thinking", "search_result"}
)
_MEDIA_BLOCKS = frozenset({"image", "document", "container_upload"})
_UNBOUNDED_FIELDS = ("mcp_servers", "context_management")
# the context-editing strategies that only drop content from the prompt (any version):
# clear_thinking_20251015, clear_tool_uses_20250919; compact_… writes a summary by
# another model turn (billed in usage.iterations), which no byte of the request bounds
_CLEARING_EDIT = re.compile(r"clear_(?:thinking|tool_uses)_[0-9]{8}")


def parse_messages_request(body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
    """Parse and check a ``POST /v1/messages`` body and its Anthropic headers. Raises
    InvalidRequest, and nothing else, for any bytes."""
    request = parse_count_tokens_request(body, headers)
    payload = request.payload
    max_tokens = payload.get("max_tokens")
    if max_tokens is None:
        raise _invalid("max_tokens: Field required", "max_tokens", "missing_required_parameter")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _invalid("max_tokens: Input should be a valid integer", "max_tokens", "invalid_type")
    if max_tokens < 1:
        raise _invalid(
            "max_tokens: Input should be greater than or equal to 1",
            "max_tokens",
            "invalid_value",
        )
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream: Input should be a valid boolean", "stream", "invalid_type")
    if payload.get("container") is not None:
        raise stored_at_provider("container: a container", "container")
    _refuse_provider_files(payload)
    return attrs.evolve(
        request, stream=bool(stream), max_tokens=max_tokens, non_text=non_text_parts(payload)
    )


def _refuse_provider_files(payload: dict[str, Any]) -> None:
    """A content block naming a file stored at the provider (a ``file`` source, a
    ``container_upload``) is refused for everyone, as ``container`` is."""
    lists = [("system", payload.get("system"))]
    lists += [
        (f"messages[{m}].content", message.get("content"))
        for m, message in enumerate(payload["messages"])
    ]
    while lists:
        where, blocks = lists.pop()
        for b, block in enumerate(blocks if isinstance(blocks, list) else ()):
            if not isinstance(block, dict):
                continue
            source = block.get("source")
            if block.get("type") == "container_upload" or (
                isinstance(source, dict) and source.get("type") == "file"
            ):
                raise stored_at_provider(
                    f"{where}[{b}] is a file",
                    f"{where}[{b}]",
                    "Send the file's data or URL instead.",
                )
            if block.get("type") == "tool_result":
                lists.append((f"{where}[{b}].content", block.get("content")))


def parse_count_tokens_request(body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
    """Parse and check a ``POST /v1/messages/count_tokens`` body (a Messages request
    without ``max_tokens``, which counting does not take) and its Anthropic headers.
    Raises InvalidRequest, and nothing else, for any bytes."""
    source = parse_json_object(body)
    payload = source.value
    client_models = parse_client_models(payload.get("models"))
    model = payload.get("model")
    if model is None and client_models is None:
        raise _invalid("model: Field required", "model", "missing_required_parameter")
    if model is not None:
        validate_model_id(model, param="model")
    messages = payload.get("messages")
    if messages is None:
        raise _invalid("messages: Field required", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise _invalid("messages: Input should be a valid list", "messages", "invalid_type")
    if not messages:
        raise _invalid("messages: at least one message is required", "messages", "empty_array")
    if not all(isinstance(m, dict) for m in messages):
        raise _invalid(
            "messages: each message should be a valid object", "messages", "invalid_type"
        )
    return ApiRequest(
        api=Api.MESSAGES,
        model=model,
        stream=False,
        max_tokens=None,
        payload=payload,
        source=source,
        client_models=tuple(client_models) if client_models is not None else None,
        forward_headers=forward_headers(headers),
    )


def forward_headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """The ``anthropic-version`` (the client's, or 2023-06-01) and ``anthropic-beta``
    headers to pass on upstream, checked: visible ASCII, bounded, one version."""
    versions = [value for name, value in headers if name.lower() == b"anthropic-version"]
    betas = [value for name, value in headers if name.lower() == b"anthropic-beta"]
    if len(versions) > 1:
        raise _header_error("anthropic-version", "must be sent once")
    version = versions[0].strip() if versions else DEFAULT_ANTHROPIC_VERSION
    _check_header("anthropic-version", version, MAX_VERSION_BYTES)
    out = [(b"anthropic-version", version)]
    if betas:
        beta = b",".join(value.strip() for value in betas)  # RFC 9110 §5.3: one list
        _check_header("anthropic-beta", beta, MAX_BETA_BYTES)
        out.append((b"anthropic-beta", beta))
    return tuple(out)


def non_text_parts(payload: dict[str, Any]) -> tuple[NonText, ...]:
    """Where a Messages request holds what its bytes do not bound (the module
    docstring lists what); each named by where it is and what it is."""
    found: list[NonText] = []
    system = payload.get("system")
    if isinstance(system, list):
        _blocks("system", "system", system, found)
    for m, message in enumerate(payload["messages"]):
        content = message.get("content")
        if isinstance(content, list):
            _blocks("messages", f"messages[{m}].content", content, found)
    tools = payload.get("tools")
    if isinstance(tools, list):
        for t, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in (None, "custom"):
                named = kind if isinstance(kind, str) and _is_name(kind) else "an unknown type"
                found.append(
                    NonText("tools", f"tools[{t}] (server tool {named}: its fees are not bounded)")
                )
    for name in _UNBOUNDED_FIELDS:
        if payload.get(name) is not None and not _only_clears(payload, name):
            found.append(NonText(name, f"'{name}'"))
    return tuple(found)


def _blocks(param: str, where: str, blocks: list[Any], found: list[NonText]) -> None:
    for b, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _TEXT_BLOCKS:
            # only a type we know is echoed: the error must not carry the client's text
            named = kind if kind in _MEDIA_BLOCKS else "an unknown type"
            found.append(NonText(param, f"{where}[{b}] ({named})"))
        elif kind == "tool_result" and isinstance(block.get("content"), list):
            _blocks(param, f"{where}[{b}].content", block["content"], found)


def _only_clears(payload: dict[str, Any], name: str) -> bool:
    """Whether ``payload[name]`` is a ``context_management`` whose only part is a
    non-empty list of clearing ``edits`` (nothing else, so no new kind of edit or
    option passes unseen)."""
    value = payload[name]
    if name != "context_management" or not isinstance(value, dict) or set(value) != {"edits"}:
        return False
    edits = value["edits"]
    return (
        isinstance(edits, list)
        and len(edits) > 0
        and all(
            isinstance(edit, dict)
            and isinstance(edit.get("type"), str)
            and _CLEARING_EDIT.fullmatch(edit["type"]) is not None
            for edit in edits
        )
    )


def _is_name(kind: str) -> bool:
    """A server tool's type as Anthropic names them (``web_search_20250305``): safe to
    echo in an error (it is the client's text otherwise)."""
    return len(kind) <= 64 and re.fullmatch(r"[a-z0-9_]+", kind) is not None


def _check_header(name: str, value: bytes, limit_bytes: int) -> None:
    if len(value) > limit_bytes:
        raise _header_error(name, f"is longer than {limit_bytes} bytes")
    if _HEADER_VALUE.fullmatch(value) is None:
        raise _header_error(name, "must be visible ASCII")


def _header_error(name: str, why: str) -> InvalidRequest:
    return _invalid(f"The {name} header {why}.", name, "invalid_header")


def _invalid(message: str, param: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)
