"""``POST /v1/chat/completions``: the HTTP adapter of the chat pipeline
(:mod:`saferouter.gateway.pipeline`), which does all the work."""

from __future__ import annotations

from quart import Blueprint, Response, g, request

from ..asgi import delivery_of, timing_of
from ..gateway.pipeline import ChatCall, chat
from ..state import app_state

blueprint = Blueprint("chat", __name__)


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    ports = app_state().ports
    assert ports is not None, "requests are served only after startup"

    async def read_body() -> bytes:
        body = await request.get_data(cache=False, as_text=False)
        assert isinstance(body, bytes)
        return body

    call = ChatCall(
        authorization=request.headers.get("Authorization"),
        read_body=read_body,
        request_id=g.request_id,
        started_s=g.started,
        timing=timing_of(request.scope),
        delivery=delivery_of(request.scope),
    )
    reply = await chat(ports, call)
    response = Response(reply.stream or reply.body, status=reply.status, headers=reply.headers)
    response.timeout = None  # a stream's own idle timeout governs it
    return response
