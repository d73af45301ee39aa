"""The Anthropic Messages dialect: ``POST /v1/messages`` (Claude Code, the Anthropic SDKs).

DeepSeek (``https://api.deepseek.com/anthropic``) and Z.AI
(``https://api.z.ai/api/anthropic``) serve this API natively, so the gateway passes it
through as it does chat completions: the client's body byte for byte but ``model`` (the
catalog's upstream name) and OpenRouter's stripped fields, the provider's answer and its
SSE byte for byte (``event:`` lines, ``ping``, thinking and signature deltas, tool input
deltas). What is Anthropic's own lives in the modules beside this one:

* the request: :mod:`.messages_request` (``max_tokens`` required, the headers passed on,
  what a metered key is refused);
* the usage: :mod:`.messages_usage` (input excludes cache reads and writes; the sum
  over ``iterations``), read from a body here and from a stream by its
  :class:`~.messages_usage.MessagesWatch`;
* the errors: Anthropic's shape and statuses, here (:func:`error_reply`).

Upstream, the provider key goes both as ``x-api-key`` (Anthropic's header) and as
``Authorization: Bearer`` (what Z.AI's docs use; DeepSeek takes either): a provider
reads the one it knows. The bill is the model the catalog routed to, never the
``model`` a response names (both providers map Claude names to their own models).

Errors: Anthropic's error body is ``{"type": "error", "error": {"type", "message"}}``
with its own statuses and types (docs.anthropic.com/en/api/errors): an Anthropic SDK raises the
exception class of the status (``OverloadedError`` for 529 …), retries 408/409/429/5xx
and shows ``error.message``. Claude Code reads the same. So every error of a
``/v1/messages`` request — ours or a provider's, already mapped to an
:class:`~saferouter.errors.ApiError` at the edge (``upstream.upstream_error``) — is
rendered here instead of in OpenAI's shape. The gateway's own ``code`` goes along inside
``error`` (as Z.AI's Anthropic endpoint sends its business code there): a client that
knows SafeRouter can tell ``insufficient_quota`` from ``unsupported_content``; one that
does not ignores it.

Where our statuses and Anthropic's differ, the status changes with the type: a provider
that is down (our 503) is Anthropic's 529 ``overloaded_error`` — what Claude Code and
the SDKs retry, with backoff, as overload; a failed provider (our 502) is a 500
``api_error`` (Anthropic has no 502). ``Retry-After`` and every other header stay.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ApiError, ParseError
from ..dialect import Api, ApiRequest, BodyFacts, fact_text
from ..upstream_body import UpstreamBody, encode_json
from .chat_watch import parse_body
from .messages_request import parse_messages_request
from .messages_usage import MessagesWatch, messages_usage


class MessagesDialect:
    """``POST /v1/messages``, passed through to the provider's Anthropic endpoint."""

    api = Api.MESSAGES
    path = "/v1/messages"
    upstream_path = "/v1/messages"  # under the provider's anthropic_base_url

    def parse(self, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
        """See :func:`~.messages_request.parse_messages_request`."""
        return parse_messages_request(body, headers)

    def upstream_body(self, request: ApiRequest) -> UpstreamBody:
        """The client's bytes, ``model`` and the stripped fields spliced."""
        return UpstreamBody.of(request.payload, request.source)

    def upstream_headers(
        self, request: ApiRequest, api_key: str | None
    ) -> list[tuple[bytes, bytes]]:
        """The key both ways, and the client's ``anthropic-version`` / ``-beta``."""
        headers = list(request.forward_headers)
        if api_key:
            key = api_key.encode()
            headers += [(b"x-api-key", key), (b"authorization", b"Bearer " + key)]
        return headers

    def body_facts(self, body: bytes) -> BodyFacts:
        """A ``message`` body's usage, id and ``stop_reason``; raises ParseError for a
        body that is not a JSON object."""
        data = parse_body(body)
        if not isinstance(data, dict):
            raise ParseError("the body is not a JSON object")
        raw = data.get("usage")
        raw_usage = raw if isinstance(raw, dict) else None
        return BodyFacts(
            raw_usage=raw_usage,
            usage=messages_usage(raw_usage) if raw_usage is not None else None,
            response_id=fact_text(data.get("id")),
            finish_reason=fact_text(data.get("stop_reason")),
        )

    def watch(self, request: ApiRequest) -> MessagesWatch:
        """A watch over one relayed stream (usage, ``message_stop``, ``error``)."""
        return MessagesWatch()

    def error_reply(self, error: ApiError) -> tuple[int, dict[str, str], bytes]:
        """Anthropic's error shape and status (:func:`error_reply`)."""
        return error_reply(error)

    def stream_error(self, error: ApiError) -> bytes:
        """``event: error`` with Anthropic's error object."""
        return stream_error(error)


MESSAGES = MessagesDialect()


# Our status → (the status the client gets, Anthropic's error type).
_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (408, "timeout_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
JSON_CONTENT_TYPE = {"Content-Type": "application/json"}


def anthropic_status(status: int) -> tuple[int, str]:
    """The status and Anthropic error type for one of our error statuses (any other 4xx
    keeps its status as an ``invalid_request_error``, any other 5xx is an ``api_error``)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return (status, "invalid_request_error") if status < 500 else (500, "api_error")


def anthropic_error_object(error: ApiError) -> tuple[int, dict[str, object]]:
    """The status and the Anthropic error object (``{"type": "error", "error": …}``)."""
    status, kind = anthropic_status(error.status)
    inner: dict[str, object] = {"type": kind, "message": error.message}
    if error.code is not None:
        inner["code"] = error.code
    return status, {"type": "error", "error": inner}


def error_reply(error: ApiError) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of ``error`` for an Anthropic client."""
    status, body = anthropic_error_object(error)
    return status, {**error.headers, **JSON_CONTENT_TYPE}, encode_json(body)


def stream_error(error: ApiError) -> bytes:
    """The in-band ``error`` event that ends a broken stream, as Anthropic sends one."""
    return b"event: error\ndata: " + encode_json(anthropic_error_object(error)[1]) + b"\n\n"
