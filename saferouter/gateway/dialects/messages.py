"""The Anthropic Messages dialect: ``POST /v1/messages`` (Claude Code, the Anthropic SDKs).

DeepSeek (``https://api.deepseek.com/anthropic``) and Z.AI
(``https://api.z.ai/api/anthropic``) serve this API natively, so the gateway passes it
through as it does chat completions: the client's body byte for byte but ``model`` (the
catalog's upstream name) and OpenRouter's stripped fields, the provider's answer and its
SSE byte for byte (``event:`` lines, ``ping``, thinking and signature deltas, tool input
deltas). What is Anthropic's own lives in the modules beside this one:

* the request: :mod:`.messages_request` (``max_tokens`` required, the headers passed on,
  what a metered key is refused);
* the usage: :mod:`.anthropic_usage` (input excludes cache reads and writes; the sum
  over ``iterations``), read from a body here and from a stream by
  :class:`~.anthropic_stream.MessagesWatch`;
* the errors: :mod:`.anthropic_errors` (Anthropic's shape and statuses).

Upstream, the provider key goes both as ``x-api-key`` (Anthropic's header) and as
``Authorization: Bearer`` (what Z.AI's docs use; DeepSeek takes either): a provider
reads the one it knows. The bill is the model the catalog routed to, never the
``model`` a response names (both providers map Claude names to their own models).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ApiError, ParseError
from ..dialect import Api, ApiRequest, BodyFacts
from ..upstream_body import UpstreamBody
from . import anthropic_errors
from .anthropic_stream import MessagesWatch
from .anthropic_usage import messages_usage
from .chat_watch import parse_body
from .messages_request import parse_messages_request


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
            response_id=_text(data.get("id")),
            finish_reason=_text(data.get("stop_reason")),
        )

    def watch(self, request: ApiRequest) -> MessagesWatch:
        """A watch over one relayed stream (usage, ``message_stop``, ``error``)."""
        return MessagesWatch()

    def error_reply(self, error: ApiError) -> tuple[int, dict[str, str], bytes]:
        """Anthropic's error shape and status (see :mod:`.anthropic_errors`)."""
        return anthropic_errors.error_reply(error)

    def stream_error(self, error: ApiError) -> bytes:
        """``event: error`` with Anthropic's error object."""
        return anthropic_errors.stream_error(error)


MESSAGES = MessagesDialect()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
