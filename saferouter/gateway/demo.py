"""The built-in ``demo`` provider: an in-process transport that speaks each API's protocol.

It implements httpcore's transport interface (``handle_async_request``), so the gateway
reaches it through exactly the code path of a real provider: the same request bytes
go in, and the same kind of response object, status, headers and SSE bytes come out.
What it answers depends on the path, as a provider's does: :data:`DEMO_FORMATS` maps
each API's upstream path to the function writing that API's wire format (an unknown
path is a 404).

No model runs. Every API's answer is :mod:`.demo_answer`'s (derived from the prompt,
and saying so; a tool call with arguments valid for the tool's schema; JSON when asked;
``n`` choices; ``max_tokens`` honoured to the token); each format only frames it
(:mod:`.demo_chat`, :mod:`.demo_messages`, :mod:`.demo_responses`) and
:mod:`.demo_http` sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpcore

from .demo_chat import chat_demo
from .demo_http import openai_error
from .demo_messages import count_tokens_demo, messages_demo
from .demo_responses import responses_demo

# One API's demo: the request's JSON object and the delay between stream events → the
# response, as that API's provider would send it.
DemoFormat = Callable[[dict[str, Any], float], httpcore.Response]


class DemoTransport:
    """httpcore-compatible transport serving every API of :data:`DEMO_FORMATS` in process."""

    def __init__(self, *, chunk_delay_s: float = 0.0) -> None:
        self._chunk_delay_s = chunk_delay_s

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """The answer of the format serving the request's path (a 404 for none)."""
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        target = request.url.target
        answer = next((fmt for path, fmt in DEMO_FORMATS.items() if target.endswith(path)), None)
        if request.method != b"POST" or answer is None:
            return openai_error(404, "Not found")
        try:
            payload = json.loads(body)
        except ValueError:
            return openai_error(400, "Failed to deserialize the JSON body")
        if not isinstance(payload, dict):
            return openai_error(400, "The body must be a JSON object")
        return answer(payload, self._chunk_delay_s)

    async def aclose(self) -> None:
        """Nothing to close: no connection is held."""
        return None


# each API's upstream path (the dialect's ``upstream_path``) → its demo format
DEMO_FORMATS: dict[bytes, DemoFormat] = {
    b"/chat/completions": chat_demo,
    b"/responses": responses_demo,
    b"/v1/messages": messages_demo,
    b"/v1/messages/count_tokens": count_tokens_demo,
}
