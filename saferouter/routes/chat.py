"""``POST /v1/chat/completions``: authenticate, check, admit, race, relay, settle."""

from __future__ import annotations

from functools import partial

import attrs
import trio
from quart import Blueprint, Response, g, request

from ..accounting import usage_of_body
from ..asgi import delivery_of, timing_of
from ..catalog import Model
from ..errors import UpstreamError
from ..gateway.audit import AuditSample
from ..gateway.books import RequestBooks
from ..gateway.race import Attempt, Race
from ..gateway.relay import StreamRelay
from ..gateway.request import ChatRequest, encode_upstream_body, parse_chat_request
from ..gateway.routing import candidates, parse_client_models
from ..state import app_state
from .auth import authenticate

blueprint = Blueprint("chat", __name__)


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    state = app_state()
    settings = state.settings
    key = await authenticate(state)
    body = await request.get_data(cache=False, as_text=False)
    assert isinstance(body, bytes)
    chat = parse_chat_request(body)
    client_models = parse_client_models(chat.payload.get("models"))
    requested = settings.catalog.resolve(chat.model)
    chain = candidates(settings.catalog, requested, client_models)
    books = await RequestBooks.admit(
        state.store if settings.accounting else None,
        key=key,
        request_id=g.request_id,
        chat=chat,
        body=body,
        candidates=chain,
        started=g.started,
    )
    sample = await AuditSample.maybe(
        state.attestation,
        key_id=key.id,
        request_id=g.request_id,
        model=requested.id,
        provider=requested.provider,
        request_body=body,
    )
    upstream_chat = _asking_for_usage(chat)
    assert state.upstreams is not None, "requests are served only after startup"
    race = Race(
        settings=settings,
        upstreams=state.upstreams,
        breaker=state.breaker,
        candidates=list(books.candidates),  # only what the reservation priced
        stream=chat.stream,
        body_for=partial(encode_upstream_body, upstream_chat),  # per attempt, on demand
        timing=timing_of(request.scope),  # the upstream's time, kept out of Server-Timing's
    )
    try:
        winner = await race.run()
    except UpstreamError as error:
        _record_losers(books, race.attempts, winner=None)
        error.headers.update(books.rate_headers())
        if sample is not None:
            error.headers.update(sample.header)
            sample.sent(error.body())
            with trio.CancelScope(shield=True):
                await sample.finish(error.status)
        if race.attempts:
            error.headers.update(_served(race.attempts[-1].model, requested))
        with trio.CancelScope(shield=True):
            await books.settle(status=error.status, outcome="error", error_type=error.code)
        raise
    except BaseException:
        _record_losers(books, race.attempts, winner=None)
        with trio.CancelScope(shield=True):
            await books.settle(
                status=499, outcome="client_closed", error_type="client_disconnected"
            )
            if sample is not None:  # the client left before any byte: nothing was sent
                await sample.finish(499)
        raise
    _record_losers(books, race.attempts, winner=winner)
    state.attempt_counts[(winner.model.provider, "won")] += 1
    books.serve(winner.number, winner.model)
    headers = {**_served(winner.model, requested), **books.rate_headers()}
    if sample is not None:
        sample.model, sample.provider = winner.model.id, winner.model.provider
        headers.update(sample.header)
    if chat.stream:
        relay = StreamRelay(
            winner,
            sample=sample,
            books=books,
            idle_timeout_s=settings.timeouts.idle_s,
            client_wants_usage=chat.include_usage,
            delivery=delivery_of(request.scope),
        )
        response = Response(
            relay,
            status=200,
            content_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        response.timeout = None
        return response
    assert winner.body is not None and winner.response is not None
    usage = usage_of_body(winner.body)
    await books.settle(
        status=winner.status,
        outcome="ok",
        usage=usage,
        estimated_text_bytes=len(winner.body) if usage is None else 0,
        ttfb_s=winner.first_byte_at,
    )
    if sample is not None:
        sample.sent(winner.body)
        await sample.finish(winner.status)
    return Response(
        winner.body, status=winner.status, content_type="application/json", headers=headers
    )


def _served(model: Model, requested: Model) -> dict[str, str]:
    """Which provider and model served, and the fallback when it was not the one asked."""
    headers = {"X-SafeRouter-Provider": model.provider, "X-SafeRouter-Model": model.id}
    if model.id != requested.id:
        headers["X-SafeRouter-Fallback-From"] = requested.id
        headers["X-SafeRouter-Fallback-To"] = model.id
    return headers


def _record_losers(books: RequestBooks, attempts: list[Attempt], winner: Attempt | None) -> None:
    counts = app_state().attempt_counts
    for attempt in attempts:
        if attempt is winner:
            continue
        counts[(attempt.model.provider, attempt.outcome)] += 1
        books.record_attempt(
            number=attempt.number,
            model=attempt.model,
            status=attempt.error.status if attempt.error is not None else attempt.status,
            outcome=attempt.outcome,
            error_type=attempt.error.code if attempt.error is not None else "lost_race",
            started=attempt.started,
            first_byte_at=attempt.first_byte_at,
            ended_at=attempt.ended_at,
        )


def _asking_for_usage(chat: ChatRequest) -> ChatRequest:
    """A stream asks the upstream for usage whatever the client asked: it is billed. The
    client's fallback list (``models``) is the gateway's business, not the provider's."""
    payload = {k: v for k, v in chat.payload.items() if k != "models"}
    if chat.stream and not chat.include_usage:
        options = payload.get("stream_options") or {}
        payload["stream_options"] = {**options, "include_usage": True}
    return attrs.evolve(chat, payload=payload)
