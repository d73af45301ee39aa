"""The request pipeline: every stage a request of any API (chat completions, responses,
messages) goes through, as plain trio code with its collaborators passed in — no web
framework, no app state. What differs between the APIs is asked of the call's
:class:`~saferouter.gateway.dialect.Dialect`.

Stages, in order (each is a function or object named here; find a behaviour by its
stage name):

1. **authenticate** — the key (``Authorization: Bearer`` or ``x-api-key``), from the
   per-worker key cache (:class:`~saferouter.gateway.auth.Authenticator`); 401 before
   the body is read.
2. **parse** — the body is read (the HTTP layer bounds its size) and checked
   (``dialect.parse``); 400 on anything odd.
3. **route** — where the request may go, as a :class:`~saferouter.gateway.route.Route`
   (:func:`~saferouter.gateway.route.route`): the requested model and its fallback
   chain, or OpenRouter's ``models`` (unknown ids skipped, with a note); only the
   candidates whose provider serves the request's API (400 ``unsupported_api``);
   OpenRouter's ``provider`` preferences; the attempts planned, each with the client's
   own provider key (BYOK) or the operator's; and a Responses follow-up
   (``previous_response_id``) pinned to where the earlier response lives.
4. **admit** — rate limits checked and the worst case of every candidate reserved, in
   one store transaction (:meth:`~saferouter.gateway.books.RequestBooks.admit`); 400,
   402 or 429 here, nothing spent.
5. **receipt** — the request is committed to (salted) and the CSPRNG decides whether it
   is an audit sample (:class:`~saferouter.gateway.receipts.Receipt`; its id was
   recorded pending by the admission). It is fed every byte the client is handed and
   every attempt, and sealed — signed, into the receipt log — once the response ended.
6. **race** — candidates are tried under the circuit breaker, with fallback and hedging,
   until one produces a first byte (:class:`~saferouter.gateway.race.Race`); losers are
   recorded, failures mapped to one error (a 200 body the dialect reads as failed
   fails over like a 5xx).
7. **relay** — the winner's body, or its stream event by event
   (:class:`~saferouter.gateway.relay.StreamRelay`, watched by the dialect's
   :class:`~saferouter.gateway.dialect.StreamWatch`), goes to the client as a
   :class:`Reply`.
8. **settle** — the reservation released, the actual cost charged and every attempt
   recorded, durably, before the response counts as complete (a stream settles before
   its terminal event, or when the client leaves). A body's or an error's receipt is written
   in the settlement's transaction; a stream's after its last byte (or the client left).

Ports (:class:`Ports`): the ``Store`` protocol (books), an ``Authenticator``, the
upstream transports (:class:`~saferouter.gateway.upstream.Upstreams`), the clients'
provider keys (:class:`~saferouter.byok.keyring.Keyring`), the
:class:`~saferouter.clock.Clock`, the receipts' signer
(:class:`~saferouter.gateway.receipts.Notary`; None: receipts off) and the
:class:`~saferouter.gateway.breaker.CircuitBreaker`. The HTTP layer's job is only to
turn a request into an :class:`ApiCall` and a :class:`Reply` (or an ``ApiError``,
through ``dialect.error_reply``) into a response; tests drive :func:`serve` directly,
in-process, under trio's ``MockClock``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs
import trio

from ..byok.keyring import Keyring
from ..catalog import Model
from ..clock import Clock
from ..config import Settings
from ..delivery import ClientDelivery
from ..errors import ApiError, UpstreamError
from ..metrics_registry import OpenStreams
from ..observe import RequestTrace
from ..storage import KeyIdentity, Store
from ..storage.records import ActivityOutcome
from ..timing import RequestTiming
from .attempt import Attempt
from .attribution import attributed
from .auth import presented_key
from .books import RequestBooks
from .breaker import CircuitBreaker
from .dialect import Api, Dialect
from .race import Race
from .receipts import Notary, Receipt, new_receipt_id
from .relay import StreamRelay
from .route import route
from .route_stats import RouteStats
from .tracing import attempt_trace
from .unsettled import Unsettled
from .upstream import Upstreams
from .usage_cost import parse_usage_option, with_cost


class KeyAuthority(Protocol):
    async def authenticate(self, authorization: str | None) -> KeyIdentity:
        """The active key named by an ``Authorization`` header, or a 401."""
        ...


@attrs.define
class Ports:
    """What the pipeline works with, made once per worker."""

    settings: Settings
    store: Store
    keys: KeyAuthority
    upstreams: Upstreams
    breaker: CircuitBreaker
    clock: Clock
    keyring: Keyring  # opens the provider keys clients brought (BYOK)
    notary: Notary | None = None  # signs receipts; None: receipts off
    # settlements the store refused, written by the heartbeat once it answers
    unsettled: Unsettled = attrs.Factory(Unsettled)
    # the streamed responses being relayed, for /metrics (the HTTP layer holds them)
    open_streams: OpenStreams = attrs.Factory(OpenStreams)
    # this worker's measured latency and throughput per model (provider.sort)
    route_stats: RouteStats = attrs.Factory(RouteStats)


@attrs.frozen
class ApiCall:
    """One request as the HTTP layer hands it over."""

    dialect: Dialect  # the API it speaks, by its path
    authorization: str | None  # the Authorization header
    read_body: Callable[[], Awaitable[bytes]]  # called once the key is known
    request_id: str
    started_s: float  # on the ports' clock (``Clock.now``)
    timing: RequestTiming | None = None
    delivery: ClientDelivery | None = None
    x_api_key: str | None = None  # the x-api-key header (Anthropic's clients send it)
    headers: Sequence[tuple[bytes, bytes]] = ()  # the request's, for the dialect to read
    trace: RequestTrace | None = None  # filled for the worker's observers (observe.py)


@attrs.define
class Reply:
    """What goes back: a whole body, or a stream the HTTP layer iterates and, when the
    client leaves early, closes (``aclose`` settles what was relayed)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: StreamRelay | None = None

    @classmethod
    def of_error(cls, error: ApiError, dialect: Dialect) -> Reply:
        """An error as the client gets it: as ``dialect``'s API renders errors."""
        status, headers, body = dialect.error_reply(error)
        return cls(status, headers, body=body)


async def serve(ports: Ports, call: ApiCall) -> Reply:
    """Run a request through every stage; raises an ``ApiError`` for the client."""
    settings, dialect = ports.settings, call.dialect
    authorization = presented_key(call.authorization, call.x_api_key)  # 1. authenticate
    key = await ports.keys.authenticate(authorization)
    body = await call.read_body()  # 2. parse
    request = attributed(dialect.parse(body, call.headers), call.headers)  # + the app
    trace = call.trace
    if trace is not None:
        trace.api, trace.stream = request.api.value, request.stream
    # OpenRouter's usage.include: the charge stated as usage.cost (chat's field)
    state_cost = request.api is Api.CHAT and parse_usage_option(request.payload.get("usage"))
    routed = await route(ports, key, request, authorization)  # 3. route
    request = routed.request
    if trace is not None:
        trace.requested_model = routed.requested.id
    receipt_id = new_receipt_id(ports.clock.wall()) if ports.notary is not None else None
    books = await RequestBooks.admit(  # 4. admit
        ports.store if settings.accounting else None,
        key=key,
        request_id=call.request_id,
        request=request,
        body=body,
        plans=routed.plans,
        started=call.started_s,
        clock=ports.clock,
        byok_fee_bp=settings.catalog.byok_fee_bp,
        receipt_id=receipt_id,
        keep_unsettled=ports.unsettled.keep,
        requested_model=routed.requested_name,
        api=request.api,
        app_title=request.app_title,
        app_referer=request.app_referer,
        note=routed.note,
    )
    books.trace = trace  # told what settlement decides
    receipt = None
    if ports.notary is not None and receipt_id is not None:  # 5. receipt
        receipt = Receipt.draw(
            ports.notary,
            ports.store,
            receipt_id=receipt_id,
            request_id=call.request_id,
            key_id=key.id,
            body=body,
            requested_model=routed.requested_name,
            stream=request.stream,
            wall_s=books.created_at,
        )
    race = Race(  # 6. race
        settings=settings,
        upstreams=ports.upstreams,
        breaker=ports.breaker,
        clock=ports.clock,
        plans=list(books.plans),  # only what the reservation priced
        dialect=dialect,
        request=request,
        timing=call.timing,  # the upstream's time, kept out of Server-Timing's
    )
    try:
        winner = await race.run()
    except UpstreamError as error:
        if routed.pin is not None:
            routed.pin.explain(error)
        await _failed(books, race, receipt, error, routed.requested, dialect)
        raise
    except BaseException:
        await _abandoned(books, race, receipt)
        raise
    _record_attempts(books, race.attempts, winner, receipt)
    books.serve(winner.number, winner.plan)
    headers = {**served_headers(winner.model, routed.requested), **books.rate_headers()}
    if receipt is not None:
        headers.update(receipt.headers)
    if request.stream:  # 7. relay (the stream settles itself: 8.)
        relay = StreamRelay(
            winner,
            receipt=receipt,
            books=books,
            idle_timeout_s=settings.timeouts.idle_s,
            dialect=dialect,
            watch=dialect.watch(request),
            client_wants_usage=request.include_usage or state_cost,
            delivery=call.delivery,
            state_cost=state_cost,
            route_stats=ports.route_stats,
        )
        headers.update(STREAM_HEADERS)
        return Reply(200, headers, stream=relay)
    body_out = await _settle_body(books, winner, receipt, state_cost=state_cost)  # 8. settle
    return Reply(winner.status, {**headers, **JSON_HEADERS}, body=body_out)


JSON_HEADERS = {"Content-Type": "application/json"}
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def _settle_body(
    books: RequestBooks, winner: Attempt, receipt: Receipt | None, *, state_cost: bool
) -> bytes:
    """Settle a request answered with a whole body, before it goes out (with its
    receipt, in one write); the bytes the client is handed (``state_cost``: with the
    charge as OpenRouter's ``usage.cost``)."""
    assert winner.body is not None and winner.facts is not None
    facts = winner.facts
    estimated_text_bytes = len(winner.body) if facts.raw_usage is None else 0
    body_out = winner.body
    if state_cost:  # the charge settle is about to make, in the bytes the receipt covers
        charged = books.key_charge_micro_usd(facts.usage, estimated_text_bytes)
        body_out = with_cost(winner.body, charged)
    if receipt is not None:
        receipt.sent(body_out)
        receipt.usage = facts.raw_usage
    charge = await books.settle(
        status=winner.status,
        outcome=ActivityOutcome.OK,
        usage=facts.usage,
        estimated_text_bytes=estimated_text_bytes,
        ttfb_s=winner.first_byte_at,
        seal=receipt.seal if receipt is not None else None,
        relayed=False,  # the body goes out after: refused, the client gets a 503 instead
        response_id=facts.response_id,
        finish_reason=facts.finish_reason,
    )
    if receipt is not None:
        await receipt.finish(charge)  # written already, unless accounting is off
    return body_out


async def _failed(
    books: RequestBooks,
    race: Race,
    receipt: Receipt | None,
    error: UpstreamError,
    requested: Model,
    dialect: Dialect,
) -> None:
    """Every candidate failed (or one failed for good): the error goes to the client with
    the rate and receipt headers, and the request is settled with nothing charged (its
    receipt, over the error body the client gets, in the same write)."""
    _record_attempts(books, race.attempts, None, receipt)
    error.headers.update(books.rate_headers())
    if race.attempts:
        error.headers.update(served_headers(race.attempts[-1].model, requested))
    if receipt is not None:
        error.headers.update(receipt.headers)
        receipt.sent(dialect.error_reply(error)[2])  # what the client is sent
    with trio.CancelScope(shield=True):
        charge = await books.settle(
            status=error.status,
            outcome=ActivityOutcome.ERROR,
            error_type=error.code,
            seal=receipt.seal if receipt is not None else None,
        )
        if receipt is not None:
            await receipt.finish(charge)


async def _abandoned(books: RequestBooks, race: Race, receipt: Receipt | None) -> None:
    """The client left (or a bug struck) before any byte: settled as closed, unsent (the
    receipt says so: status 499 over no bytes, and who had been sent the prompt)."""
    # an attempt cut short here lost no race: the client's leaving cancelled it
    _record_attempts(books, race.attempts, None, receipt, cut_by="client_disconnected")
    with trio.CancelScope(shield=True):
        charge = await books.settle(
            status=499,
            outcome=ActivityOutcome.CLIENT_CLOSED,
            error_type="client_disconnected",
            seal=receipt.seal if receipt is not None else None,
        )
        if receipt is not None:
            await receipt.finish(charge)


def served_headers(model: Model, requested: Model) -> dict[str, str]:
    """Which provider and model served, and the fallback when it was not the one asked."""
    headers = {"X-SafeRouter-Provider": model.provider, "X-SafeRouter-Model": model.id}
    if model.id != requested.id:
        headers["X-SafeRouter-Fallback-From"] = requested.id
        headers["X-SafeRouter-Fallback-To"] = model.id
    return headers


def _record_attempts(
    books: RequestBooks,
    attempts: list[Attempt],
    winner: Attempt | None,
    receipt: Receipt | None,
    *,
    cut_by: str = "lost_race",
) -> None:
    """List every attempt in the receipt and the trace (for /metrics and tracing); put
    each one that does not serve in the books (one cancelled without an error of its own
    as ``cut_by``: what cancelled it)."""
    if receipt is not None:
        receipt.record_attempts(attempts)
    if books.trace is not None:
        books.trace.attempts = [
            attempt_trace(attempt, cut_by=None if attempt is winner else cut_by)
            for attempt in attempts
        ]
    for attempt in attempts:
        if attempt is winner:
            continue
        books.record_attempt(
            number=attempt.number,
            plan=attempt.plan,
            status=attempt.error.status if attempt.error is not None else attempt.status,
            outcome=ActivityOutcome(attempt.outcome),  # error or cancelled
            error_type=attempt.error.code if attempt.error is not None else cut_by,
            started=attempt.started,
            first_byte_at=attempt.first_byte_at,
            ended_at=attempt.ended_at,
        )
