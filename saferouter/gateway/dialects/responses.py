"""The OpenAI Responses API, ``POST /v1/responses``, as a :class:`~..dialect.Dialect`.

Passed through to providers that serve it (the catalog's ``apis``; DeepSeek does, at
``https://api.deepseek.com/responses``): the client's body goes to
``{base_url}/responses`` byte for byte but for ``model`` and the OpenRouter fields the
gateway strips, with the provider key as a bearer token, and the answer comes back byte
for byte — every ``event: response.*`` of a stream, whichever order its fields are in.

What is read of a request is in :mod:`.responses_request`, of an answer (usage, the
terminal event, a 200 that is a failure) in :mod:`.responses_usage`. Errors keep
OpenAI's shape, whole or in a stream, where they take the Responses API's own ``error``
event (``{"type": "error", "code", "message", "param", "sequence_number"}``), which the
openai SDK turns into a ``ResponseErrorEvent``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ApiError
from ..dialect import Api, ApiRequest, BodyFacts
from ..upstream_body import UpstreamBody, encode_json
from .chat import bearer_headers, openai_error_reply
from .responses_request import parse_responses_request
from .responses_usage import ResponsesWatch, responses_body_facts


class ResponsesDialect:
    """OpenAI's Responses API (see the module docstring)."""

    api = Api.RESPONSES
    path = "/v1/responses"
    upstream_path = "/responses"

    def parse(self, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
        """The request in ``body``; raises InvalidRequest, nothing else."""
        return parse_responses_request(body)

    def upstream_body(self, request: ApiRequest) -> UpstreamBody:
        """The client's bytes, ``model`` per attempt, the stripped fields gone: usage
        needs no asking here, every terminal event carries it."""
        return UpstreamBody.of(request.payload, request.source)

    def upstream_headers(
        self, request: ApiRequest, api_key: str | None
    ) -> list[tuple[bytes, bytes]]:
        """``Authorization: Bearer`` with the provider key (none for a keyless provider)."""
        return bearer_headers(api_key)

    def body_facts(self, body: bytes) -> BodyFacts:
        """Usage, id and status of a whole body; ``failed`` for a 200 whose status is
        ``failed``."""
        return responses_body_facts(body)

    def watch(self, request: ApiRequest) -> ResponsesWatch:
        """A watch over one Responses stream."""
        return ResponsesWatch()

    def error_reply(self, error: ApiError) -> tuple[int, dict[str, str], bytes]:
        """OpenAI's error shape and status, as for chat completions."""
        return openai_error_reply(error)

    def stream_error(self, error: ApiError) -> bytes:
        """The Responses API's ``error`` event. Its ``sequence_number`` is 0: a dialect is
        stateless, and the relay does not say where the stream stood (the openai SDK
        reads the number only to resume a stream, which the gateway does not serve)."""
        data = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + encode_json(data) + b"\n\n"


RESPONSES = ResponsesDialect()
