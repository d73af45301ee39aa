"""Racing a request's candidates in one trio nursery.

Each attempt runs in the request's nursery under its own cancel scope (its first-byte
deadline). The coordinator starts the first candidate; when it fails over, the next
starts at once; with ``hedge_after_ms`` on the model, the next also starts when the
current one has produced no first byte after that delay. The first attempt to produce
a byte wins — for a stream, its first data event; for a body, the whole valid body —
and every other attempt is cancelled: its upstream socket closes and it is recorded as
``cancelled``. The winner's open response is handed to the relay; once a byte of it has
gone to the client there is no fallback. An overall deadline bounds the whole race.

The queue holds plans (:class:`~.routing.Plan`): a model, its endpoint, and whose
provider key goes with it. An attempt with the operator's key starts only with the circuit
breaker's :class:`Admission`, entered into one exit stack that the whole race runs
inside: whichever way the race ends (a winner, an error, the deadline, the client
leaving, a bug), every admission no verdict settled gives its half-open probe back. An
attempt with the client's own key takes none, and its end is never reported: the
circuits are shared by every tenant, and one client's key (refused, out of balance,
rate limited) says nothing about the provider for anyone else. The operator's key
standing in for the client's (``byok_fallback``, :attr:`~.routing.Plan.stand_in`) is
held back until the provider refuses the client's key: no other failure of it, and no
hedge while it is slow, hands the request to the operator's account.

With a :class:`~saferouter.timing.RequestTiming`, the race records, whichever way it
ends, how long the request waited on upstreams — from the first upstream request sent to
the race's end, so fallbacks and hedges count once, as wall-clock time — and the serving
attempt's time to first byte: the ``Server-Timing`` header subtracts the one and shows
the other.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from functools import partial

import httpcore
import trio

from ..clock import Clock
from ..config import Settings
from ..errors import (
    ByokKeyRejected,
    ParseError,
    UpstreamBadGateway,
    UpstreamError,
    UpstreamTimeout,
)
from ..observe import StartedBy
from ..sse import SSEDecoder
from ..timing import RequestTiming
from .attempt import Attempt, AttemptOutcome
from .breaker import CircuitBreaker, Outcome
from .dialect import ApiRequest, Dialect
from .redact import Redactor
from .routing import NotStarted, Plan, classify, refused, unavailable
from .upstream import (
    MAX_RESPONSE_BYTES,
    UpstreamPath,
    Upstreams,
    header,
    read_body,
    read_error_body,
    upstream_error,
)

_NETWORK_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException)


class Race:
    def __init__(
        self,
        *,
        settings: Settings,
        upstreams: Upstreams,
        breaker: CircuitBreaker,
        clock: Clock,
        plans: list[Plan],
        dialect: Dialect,
        request: ApiRequest,
        timing: RequestTiming | None = None,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._breaker = breaker
        self._clock = clock
        self._queue = list(plans)
        self._dialect = dialect
        self._body_for = dialect.upstream_body(request).for_model
        self._path = UpstreamPath(
            dialect.api, dialect.upstream_path, partial(dialect.upstream_headers, request)
        )
        self._stream = request.stream
        self._timing = timing
        self.attempts: list[Attempt] = []
        self._skipped: set[tuple[str, bool]] = set()  # Plan.account ruled out
        self._refused: set[str] = set()  # providers that refused the client's own key
        self._held_back: list[Plan] = []  # stand-ins waiting for such a refusal
        self._not_started: list[NotStarted] = []
        self._admissions = ExitStack()

    async def run(self) -> Attempt:
        """The winning attempt, or the error the client should get."""
        with self._admissions:  # gives back every probe no verdict settled, on any exit
            try:
                winner = await self._run()
            finally:
                self._record_wait()
        if self._timing is not None:
            assert winner.sent_at is not None and winner.first_byte_at is not None
            self._timing.served_by_upstream(
                sent_s=winner.sent_at, first_byte_s=winner.first_byte_at
            )
        return winner

    def _record_wait(self) -> None:
        """The wall-clock time from the first upstream request sent until now."""
        sent = [a.sent_at for a in self.attempts if a.sent_at is not None]
        if self._timing is not None and sent:
            self._timing.waited_on_upstream(from_s=min(sent), until_s=self._clock.now())

    async def _run(self) -> Attempt:
        if any(plan.model.hedge_after_ms for plan in self._queue):
            return await self._race()
        return await self._in_turn()

    async def _in_turn(self) -> Attempt:
        """No candidate hedges: one attempt at a time, in this task (no nursery, no
        channel — the common case, and the cheap one)."""
        last: UpstreamError | None = None
        with trio.move_on_after(self._settings.timeouts.request_deadline_s) as deadline:
            while (attempt := self._next_attempt()) is not None:
                await self._try(attempt)
                if self._judge(attempt):
                    return attempt
                last = attempt.error
        raise self._no_winner(deadline, last)

    async def _race(self) -> Attempt:
        """Attempts in a nursery: the next candidate starts when the current one fails,
        or when it has been silent for its model's ``hedge_after_ms``."""
        send, receive = trio.open_memory_channel[Attempt](len(self._queue) + 1)
        winner: Attempt | None = None
        last: UpstreamError | None = None
        # an error that ends the request is raised once the nursery has closed: raised
        # inside it, trio would wrap it in an ExceptionGroup no ``except`` of ours names
        final: UpstreamError | None = None
        with trio.move_on_after(self._settings.timeouts.request_deadline_s) as deadline:
            async with trio.open_nursery() as nursery:

                def start_next(hedge: bool = False) -> int:
                    attempt = self._next_attempt(hedge=hedge)
                    if attempt is not None:
                        nursery.start_soon(self._attempt, attempt, send)
                    return attempt is not None

                running = start_next()
                hedged: set[int] = set()
                while running:
                    current = self.attempts[-1]
                    hedge_s = math.inf
                    if (
                        current.model.hedge_after_ms
                        and current.number not in hedged
                        and self._queue
                    ):
                        hedge_s = max(
                            0.0,
                            current.started
                            + current.model.hedge_after_ms / 1000
                            - self._clock.now(),
                        )
                    with trio.move_on_after(hedge_s) as hedge_wait:
                        attempt = await receive.receive()
                    if hedge_wait.cancelled_caught:
                        hedged.add(current.number)
                        running += start_next(hedge=True)
                        continue
                    running -= 1
                    try:
                        won = self._judge(attempt)
                    except UpstreamError as error:
                        final = error
                        nursery.cancel_scope.cancel()
                        break
                    if won:
                        winner = attempt
                        nursery.cancel_scope.cancel()
                        break
                    last = attempt.error
                    if running == 0:
                        running += start_next()
        await self._close_late_winners(receive, winner)
        if final is not None:
            raise final
        if winner is not None:
            return winner
        raise self._no_winner(deadline, last)

    def _judge(self, attempt: Attempt) -> bool:
        """Settle a finished attempt with the breaker: True if it won; False if the
        request fails over; raises its error when no other candidate may be tried."""
        now = self._clock.now()
        admission = attempt.admission
        if attempt.outcome is AttemptOutcome.WON:
            if admission is not None:
                admission.settle(Outcome.SUCCESS, now)
            return True
        assert attempt.error is not None
        own_key = attempt.plan.own_key
        fallback = own_key is not None and own_key.fallback
        verdict = classify(attempt.error, attempt.model, byok_fallback=fallback)
        if admission is not None:
            admission.settle(
                verdict.breaker, now, key=verdict.breaker_key, retry_after_s=verdict.retry_after_s
            )
        if not verdict.failover:
            raise attempt.error
        if verdict.skip_provider:
            self._skipped.add(attempt.plan.account)
        if fallback and isinstance(attempt.error, ByokKeyRejected):
            self._call_stand_ins(attempt.model.provider)
        return False

    def _call_stand_ins(self, provider: str) -> None:
        """The provider refused the client's own key: the operator's stand-ins for it,
        held back until now, go to the front of the queue (the same model next)."""
        called = [plan for plan in self._held_back if plan.model.provider == provider]
        self._held_back = [plan for plan in self._held_back if plan not in called]
        self._refused.add(provider)
        self._queue[:0] = called

    def _no_winner(self, deadline: trio.CancelScope, last: UpstreamError | None) -> UpstreamError:
        """The error for a race nobody won: the deadline, the last failure, or why no
        candidate could even be tried."""
        if deadline.cancelled_caught:
            return UpstreamTimeout(
                f"No provider answered within {self._settings.timeouts.request_deadline_s:g} s "
                f"({len(self.attempts)} attempt(s))",
                code="request_deadline_exceeded",
            )
        if last is not None:
            return last
        return unavailable(self._not_started, self._clock.now())

    def _next_attempt(self, *, hedge: bool = False) -> Attempt | None:
        """The next candidate the breaker lets through, admitted and counted; None when
        none is left (or the attempt bound is reached). ``hedge``: started because the
        one before it is still silent (else: it is the first, or the one before failed)."""
        settings = self._settings
        while self._queue:
            if len(self.attempts) >= settings.max_attempts:
                self._queue.clear()
                return None
            plan = self._queue.pop(0)
            model, endpoint = plan.model, plan.endpoint
            provider = endpoint.provider
            if plan.account in self._skipped:
                continue
            if plan.stand_in and model.provider not in self._refused:
                self._held_back.append(plan)  # until the client's key is refused, if ever
                continue
            if not endpoint.available:
                self._not_started.append(
                    NotStarted(
                        "provider_not_configured",
                        f"{provider.name} is not configured (the operator has not set "
                        f"{provider.api_key_env})",
                    )
                )
                continue
            now = self._clock.now()
            admission = None
            if plan.own_key is None:  # the client's own key is not the circuits' business
                keys = (model.provider, f"{model.provider}/{model.id}")
                admission = self._breaker.admit(keys, now)
                if admission is None:
                    standing = self._breaker.standing(keys, now)
                    self._not_started.append(refused(standing, provider.name, model.id))
                    continue
                self._admissions.enter_context(admission)
            deadline = math.inf
            if self._stream:
                deadline = trio.current_time() + settings.timeouts.first_byte_s
            attempt = Attempt(
                number=len(self.attempts) + 1,
                plan=plan,
                admission=admission,
                started=now,
                scope=trio.CancelScope(deadline=deadline),
                started_by=StartedBy.HEDGE if hedge else _started_by(self.attempts),
            )
            self.attempts.append(attempt)
            return attempt
        return None

    async def _attempt(self, attempt: Attempt, send: trio.MemorySendChannel[Attempt]) -> None:
        """An attempt of a race in a nursery: its end is handed to the coordinator."""
        await self._try(attempt)
        if attempt.outcome is not AttemptOutcome.CANCELLED:
            send.send_nowait(attempt)  # no checkpoint since it won: the hand-over is atomic

    async def _try(self, attempt: Attempt) -> None:
        """Run one attempt until its first byte (won) or its failure (error); a loser or
        a cancelled attempt has its upstream response closed."""
        try:
            with attempt.scope:
                try:
                    await self._produce_first_byte(attempt)
                    attempt.first_byte_at = self._clock.now()
                    attempt.outcome = AttemptOutcome.WON
                    return
                except UpstreamError as error:
                    attempt.error = error
            if attempt.error is None:  # its own first-byte deadline
                attempt.error = UpstreamTimeout(
                    f"{attempt.endpoint.provider.name} sent no first byte within "
                    f"{self._settings.timeouts.first_byte_s:g} s",
                    code="upstream_first_byte_timeout",
                )
            attempt.outcome = AttemptOutcome.ERROR
        finally:
            attempt.ended_at = self._clock.now()
            if attempt.outcome is not AttemptOutcome.WON:
                if attempt.outcome is AttemptOutcome.PENDING:
                    attempt.outcome = AttemptOutcome.CANCELLED
                await self._close(attempt)

    async def _produce_first_byte(self, attempt: Attempt) -> None:
        settings = self._settings
        name = attempt.endpoint.provider.name
        body = self._body_for(attempt.model)  # the gateway's work: not upstream waiting
        attempt.sent_at = self._clock.now()
        response = await self._upstreams.open(
            attempt.endpoint,
            body,
            path=self._path,
            stream=self._stream,
            timeouts=settings.timeouts,
        )
        attempt.response = response
        attempt.status = response.status
        redactor = Redactor.for_key(attempt.endpoint.api_key)
        # only a 2xx is an answer: a redirect (httpcore follows none) would be relayed,
        # and billed, as one — its Location unseen, its body whatever the provider chose
        if not 200 <= response.status < 300:
            body = await read_error_body(response, name)
            raise upstream_error(
                response.status,
                body,
                response.headers,
                name,
                redactor=redactor,
                own_key_fingerprint=own.fingerprint if (own := attempt.plan.own_key) else None,
            )
        content_type = (header(response, b"content-type") or "").lower()
        if not self._stream:
            attempt.body = redactor.known(
                await read_body(response, name, settings.timeouts.total_s, MAX_RESPONSE_BYTES)
            )
            try:
                attempt.facts = self._dialect.body_facts(attempt.body)
            except ParseError:
                raise UpstreamBadGateway(
                    f"{name} answered with a body that is not JSON", code="upstream_invalid_json"
                ) from None
            if attempt.facts.failed is not None:  # a 200 that says it failed: fail over
                raise UpstreamBadGateway(
                    f"{name} answered that the response failed: {attempt.facts.failed}",
                    code="upstream_failed_response",
                )
            return
        if not content_type.startswith("text/event-stream"):
            raise UpstreamBadGateway(
                f"{name} answered a stream request with {content_type or 'no content type'}",
                code="upstream_not_a_stream",
            )
        decoder = SSEDecoder()
        chunks = response.aiter_stream().__aiter__()
        while not any(event.data is not None for event in attempt.prelude):
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                raise UpstreamBadGateway(
                    f"{name} ended the stream before any data", code="upstream_empty_stream"
                ) from None
            except _NETWORK_ERRORS as exc:
                raise UpstreamBadGateway(
                    f"{name} broke off the stream before its first byte",
                    code="upstream_stream_failed",
                ) from exc
            decoder.feed(chunk)
            try:
                attempt.prelude.extend(decoder.events())
            except ParseError:
                raise UpstreamBadGateway(
                    f"{name} sent an SSE line or event over the size limit",
                    code="upstream_event_too_large",
                ) from None
        attempt.decoder, attempt.chunks = decoder, chunks

    async def _close_late_winners(
        self, receive: trio.MemoryReceiveChannel[Attempt], winner: Attempt | None
    ) -> None:
        """An attempt that produced its byte just after the winner loses all the same."""
        while True:
            try:
                attempt = receive.receive_nowait()
            except trio.WouldBlock:
                return
            if attempt is not winner and attempt.outcome is AttemptOutcome.WON:
                attempt.outcome = AttemptOutcome.CANCELLED
                await self._close(attempt)

    @staticmethod
    async def _close(attempt: Attempt) -> None:
        if attempt.response is not None:
            with trio.CancelScope(shield=True):
                await attempt.response.aclose()


def _started_by(earlier: list[Attempt]) -> StartedBy:
    """Why an attempt that is no hedge starts: it is the first, or the one before failed."""
    return StartedBy.FALLBACK if earlier else StartedBy.FIRST
