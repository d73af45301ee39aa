"""``POST /v1/chat/completions``: authenticate, check, admit, route, relay, settle."""

from __future__ import annotations

import time

import httpcore
import trio
from quart import Blueprint, Response, g, request

from ..accounting import usage_of_body
from ..errors import UpstreamBadGateway, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ..gateway.books import RequestBooks
from ..gateway.relay import StreamRelay
from ..gateway.request import ChatRequest, encode_upstream_body, parse_chat_request
from ..gateway.upstream import read_error_body, upstream_error
from ..state import app_state
from .auth import authenticate

blueprint = Blueprint("chat", __name__)

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    state = app_state()
    settings = state.settings
    key = await authenticate(state)
    body = await request.get_data(cache=False, as_text=False)
    assert isinstance(body, bytes)
    chat = parse_chat_request(body)
    model = settings.catalog.resolve(chat.model)
    endpoint = settings.endpoints[model.provider]
    provider = endpoint.provider
    served = {"X-SafeRouter-Provider": provider.id, "X-SafeRouter-Model": model.id}
    if not endpoint.available:
        raise UpstreamUnavailable(
            f"Provider {provider.name} is not configured on this gateway "
            f"(the operator has not set {provider.api_key_env}).",
            code="provider_not_configured",
            headers=served,
        )
    books = await RequestBooks.admit(
        state.store if settings.accounting else None,
        key=key,
        request_id=g.request_id,
        requested_model=chat.model,
        model=model,
        body=body,
        max_tokens=chat.max_tokens,
        streamed=chat.stream,
        started=g.started,
    )
    served.update(books.rate_headers())
    assert state.upstreams is not None, "requests are served only after startup"
    try:
        upstream = await state.upstreams.open(
            endpoint,
            encode_upstream_body(_asking_for_usage(chat), model),
            stream=chat.stream,
            timeouts=settings.timeouts,
        )
        if upstream.status >= 400:
            error_body = await read_error_body(upstream, provider.name)
            raise upstream_error(upstream.status, error_body, upstream.headers, provider.name)
    except UpstreamError as error:
        error.headers.update(served)
        with trio.CancelScope(shield=True):
            await books.settle(status=error.status, outcome="error", error_type=error.code)
        raise
    except BaseException:
        with trio.CancelScope(shield=True):
            await books.settle(
                status=499, outcome="client_closed", error_type="client_disconnected"
            )
        raise
    if chat.stream:
        relay = StreamRelay(
            upstream,
            books=books,
            idle_timeout_s=settings.timeouts.idle_s,
            provider_name=provider.name,
            client_wants_usage=chat.include_usage,
        )
        response = Response(
            relay,
            status=200,
            content_type="text/event-stream",
            headers={**served, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        response.timeout = None
        return response
    first_byte_at = time.perf_counter()
    try:
        answer = await _read_body(upstream, provider.name, settings.timeouts.total_s)
    except UpstreamError as error:
        with trio.CancelScope(shield=True):
            await books.settle(
                status=error.status, outcome="error", error_type=error.code, ttfb_s=first_byte_at
            )
        raise
    usage = usage_of_body(answer)
    await books.settle(
        status=upstream.status,
        outcome="ok",
        usage=usage,
        estimated_text_bytes=len(answer) if usage is None else 0,
        ttfb_s=first_byte_at,
    )
    content_type = _header(upstream, b"content-type") or "application/json"
    if "json" not in content_type:
        content_type = "application/json"
    return Response(answer, status=upstream.status, content_type=content_type, headers=served)


def _asking_for_usage(chat: ChatRequest) -> ChatRequest:
    """A stream asks the upstream for usage whatever the client asked: it is billed."""
    if not chat.stream or chat.include_usage:
        return chat
    options = chat.payload.get("stream_options") or {}
    payload = {**chat.payload, "stream_options": {**options, "include_usage": True}}
    return ChatRequest(
        model=chat.model,
        stream=True,
        include_usage=False,
        max_tokens=chat.max_tokens,
        payload=payload,
    )


async def _read_body(upstream: httpcore.Response, provider_name: str, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with trio.fail_after(timeout_s):
            async for chunk in upstream.aiter_stream():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise UpstreamBadGateway(f"{provider_name} sent a response over the limit")
                chunks.append(chunk)
    except trio.TooSlowError:
        raise UpstreamTimeout(
            f"{provider_name} did not finish its answer in {timeout_s:g} s"
        ) from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException) as exc:
        raise UpstreamBadGateway(f"{provider_name} broke off its answer") from exc
    finally:
        with trio.CancelScope(shield=True):
            await upstream.aclose()
    return b"".join(chunks)


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
