"""What differs between the APIs the gateway speaks, as one protocol (pure, no trio).

Every API — OpenAI Chat Completions, OpenAI Responses, Anthropic Messages — goes through
the same pipeline (:mod:`saferouter.gateway.pipeline`): authenticate, parse, route,
admit, receipt, race, relay, settle. What the stages need to know of an API is asked of
its :class:`Dialect`, registered by client path in
:data:`saferouter.gateway.dialects.DIALECTS`:

* **parse** — the client's bytes as an :class:`ApiRequest` (what the gateway decides
  on: model, stream, the output bound, what the bytes do not bound); any bad input is an
  ``ApiError``, never anything else;
* **upstream** — the path under the provider's base URL for this API, the body to send
  (:class:`~saferouter.gateway.upstream_body.UpstreamBody`: the client's bytes spliced,
  :data:`~saferouter.gateway.upstream_body.STRIPPED_FIELDS` removed) and the headers;
* **read** — what a whole body says (:class:`BodyFacts`) and a :class:`StreamWatch`
  over a relayed stream (usage, its end, an in-band failure);
* **render** — errors as this API's clients expect them, whole or in-band in a stream.

A dialect is a stateless value; per-request state lives in the :class:`ApiRequest` and
the :class:`StreamWatch` it makes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from ..accounting import Usage
from ..catalog import Api  # below the gateway: the catalog lists each provider's APIs
from ..errors import ApiError, InvalidRequest
from ..json_object import JsonObject
from ..sse import SSEEvent
from .upstream_body import UpstreamBody

__all__ = ["Api", "ApiRequest", "BodyFacts", "Dialect", "NonText", "StreamWatch", "fact_text"]


@attrs.frozen
class NonText:
    """Something in a request whose cost its bytes do not bound (an image, a server-run
    tool, an earlier response of unknown size): a metered key is refused it, 400
    ``unsupported_content`` naming the field of the first one found."""

    param: str  # the top-level request field it is in ("messages", "input", "tools" …)
    where: str  # where and what, as the refusal says: "messages[0].content[1] (image_url)"


@attrs.frozen
class ApiRequest:
    """What the gateway decides on in a request of any API (``books.admit`` takes it)."""

    api: Api
    model: str | None  # None only when client_models is given (OpenRouter's ``models``)
    stream: bool
    # what bounds output: chat the larger of its limits; responses max_output_tokens;
    # messages max_tokens (required there)
    max_tokens: int | None
    payload: dict[str, Any] = attrs.field(repr=False)  # the parsed body
    choices: int = 1
    # what the body's bytes do not bound (refused on a metered key), in body order;
    # empty for text only
    non_text: tuple[NonText, ...] = ()
    # the body as sent and where its members sit: what UpstreamBody splices
    source: JsonObject | None = attrs.field(default=None, repr=False, eq=False)
    include_usage: bool = False  # chat: the client asked for stream usage itself
    client_models: tuple[str, ...] | None = None  # OpenRouter's ``models``
    previous_response_id: str | None = None  # responses
    # prompt tokens the provider adds from what it stored, which the body's bytes do not
    # bound: a Responses follow-up's earlier turns (set by the previous_response_id pin)
    context_tokens: int = 0
    # headers passed on upstream as the client sent them (checked), e.g. anthropic-version
    forward_headers: tuple[tuple[bytes, bytes], ...] = ()
    app_title: str | None = None  # X-Title (checked: storable, at most 200 characters)
    app_referer: str | None = None  # HTTP-Referer (likewise)


@attrs.frozen
class BodyFacts:
    """What a whole (non-stream) 2xx body says."""

    raw_usage: Mapping[str, Any] | None  # as the provider wrote it (for the receipt)
    usage: Usage | None
    response_id: str | None  # the body's id (chatcmpl-…, resp_…, msg_…)
    # chat: choices[0].finish_reason; responses: status; messages: stop_reason
    finish_reason: str | None
    # not None: a 200 that is a failure (a Responses status "failed"), said why: the
    # race fails over and nothing is billed
    failed: str | None = None


MAX_FACT_CHARS = 200


def stored_at_provider(what: str, param: str, instead: str = "") -> InvalidRequest:
    """The one refusal of state a request names at the provider (a file, a container, a
    stored item, vector stores), whatever the API: it lives under the gateway's account,
    which every key shares, and the gateway keeps no record of whose it is."""
    return InvalidRequest(
        f"{what} stored at the provider under the gateway's account, which every key "
        f"shares, and the gateway keeps no record of whose it is, so it is not served."
        + (f" {instead}" if instead else ""),
        param=param,
        code="unsupported_parameter",
    )


def fact_text(value: object) -> str | None:
    """A response's string field (an id, a finish reason) as text the store may keep:
    at most 200 characters, no NUL; None for anything else."""
    if isinstance(value, str) and "\x00" not in value:
        return value[:MAX_FACT_CHARS]
    return None


class WatchStart:
    """What every :class:`StreamWatch` knows before its first event: nothing reported,
    nothing relayed, not ended. A watch may start from it (``super().__init__()``)."""

    def __init__(self) -> None:
        self.raw_usage: Mapping[str, Any] | None = None
        self.text_bytes = 0
        self.response_id: str | None = None
        self.finish_reason: str | None = None
        self.complete = False
        self.failed = False

    @property
    def usage_estimated(self) -> bool:
        """Whether :attr:`usage` holds an estimate the stream did not report (no)."""
        return False


class StreamWatch(Protocol):
    """Watches one relayed stream, event by event (sans-I/O; one per stream)."""

    raw_usage: Mapping[str, Any] | None
    text_bytes: int  # text relayed, for an estimate when no usage comes
    response_id: str | None
    finish_reason: str | None
    complete: bool  # the stream's end was seen ([DONE], a terminal event, message_stop)
    failed: bool  # an in-band error, or a failed terminal event

    def observe(self, event: SSEEvent) -> bool:
        """Account for one event (its data redacted of known keys by the relay); True
        when it is the usage-only chunk (chat), which the relay drops unless the client
        asked for usage."""
        ...

    def is_terminal(self, event: SSEEvent) -> bool:
        """Whether the request settles BEFORE this event goes out: chat ``[DONE]``;
        responses response.completed / .failed / .incomplete; messages message_stop."""
        ...

    @property
    def usage(self) -> Usage | None:
        """The usage reported so far, as billed."""
        ...

    @property
    def usage_estimated(self) -> bool:
        """Whether part of :attr:`usage` is an estimate (a count the stream reported
        only provisionally, raised to the text relayed): billed, and marked so."""
        ...


class Dialect(Protocol):
    """One API the gateway serves (see the module docstring)."""

    api: Api
    path: str  # the client's path: "/v1/chat/completions", "/v1/responses", "/v1/messages"
    # appended to the provider's base URL for this API (UpstreamEndpoint.url(api)):
    # "/chat/completions", "/responses", "/v1/messages"
    upstream_path: str

    def parse(self, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
        """The request in ``body`` (sent with ``headers``); raises ``ApiError``
        (InvalidRequest …), and nothing else, for any bytes."""
        ...

    def upstream_body(self, request: ApiRequest) -> UpstreamBody:
        """The body sent upstream, asked per attempt: ``.for_model(model) -> bytes``."""
        ...

    def upstream_headers(
        self, request: ApiRequest, api_key: str | None
    ) -> list[tuple[bytes, bytes]]:
        """Auth and API headers (not host, content type or length): chat and responses
        ``Authorization: Bearer``; messages ``x-api-key`` and ``Authorization``,
        ``anthropic-version`` (the client's, default "2023-06-01"), ``anthropic-beta``."""
        ...

    def body_facts(self, body: bytes) -> BodyFacts:
        """What a whole 2xx body says."""
        ...

    def watch(self, request: ApiRequest) -> StreamWatch:
        """A new watch for one stream of ``request``."""
        ...

    def error_reply(self, error: ApiError) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of ``error`` as this API's clients expect it."""
        ...

    def stream_error(self, error: ApiError) -> bytes:
        """The in-band error event ending a broken stream (whole SSE event bytes)."""
        ...
