"""``POST /v1/chat/completions``: authenticate, check, route, relay."""

from __future__ import annotations

import httpcore
import trio
from quart import Blueprint, Response, request

from ..errors import UpstreamBadGateway, UpstreamTimeout, UpstreamUnavailable
from ..gateway.relay import StreamRelay
from ..gateway.request import encode_upstream_body, parse_chat_request
from ..gateway.upstream import read_error_body, upstream_error
from ..state import app_state
from .auth import authenticate

blueprint = Blueprint("chat", __name__)

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    state = app_state()
    settings = state.settings
    await authenticate(state)
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
    assert state.upstreams is not None, "requests are served only after startup"
    upstream = await state.upstreams.open(
        endpoint,
        encode_upstream_body(chat, model),
        stream=chat.stream,
        timeouts=settings.timeouts,
    )
    if upstream.status >= 400:
        error_body = await read_error_body(upstream, provider.name)
        error = upstream_error(upstream.status, error_body, upstream.headers, provider.name)
        error.headers.update(served)
        raise error
    if chat.stream:
        relay = StreamRelay(
            upstream, idle_timeout_s=settings.timeouts.idle_s, provider_name=provider.name
        )
        response = Response(
            relay,
            status=200,
            content_type="text/event-stream",
            headers={**served, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        response.timeout = None
        return response
    answer = await _read_body(upstream, provider.name, settings.timeouts.total_s)
    content_type = _header(upstream, b"content-type") or "application/json"
    if "json" not in content_type:
        content_type = "application/json"
    return Response(answer, status=upstream.status, content_type=content_type, headers=served)


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
