"""Relaying an upstream SSE body to the client, byte for byte, event by event.

:class:`StreamRelay` is the response body the HTTP adapter sends. It is an async iterator
(not a generator) so that:

* no ``yield`` ever sits inside a cancel scope (trio#638: a deadline firing while a
  generator is parked at ``yield`` silently truncates the stream);
* ``aclose`` closes the upstream even when iteration never started;
* a client disconnect makes the adapter call ``aclose``, which closes the upstream socket at
  once (shielded, so the close itself cannot be cancelled half-way) and bills what was
  relayed. A client that stopped reading is cut off by the ASGI layer's send timeout
  (``saferouter/asgi.py``) the same way; its :class:`ClientDelivery` says so, and the
  request is recorded ``client_stalled`` instead of ``client_closed``.

Bytes go to the client as whole events: what the decoder completed from the bytes read
so far. Joined, they are exactly the upstream's bytes — except the usage-only event
(chat's ``choices: []``), dropped when the client did not ask for usage, since the
gateway asked the upstream for it to bill the stream — and except the provider key,
wherever it appears, and any credential in an in-band error event (``redact.py``) —
and, when the client asked OpenRouter's ``usage: {"include": true}``, ``usage.cost``:
the latest event carrying usage is held back until the request settles and goes out
with the charge in it (:class:`~saferouter.gateway.usage_cost.CostHold`). A stream
served whole also feeds this worker's measured figures of its model
(:class:`~saferouter.gateway.route_stats.RouteStats`: ``provider.sort``).

What each event means is the API's business: the dialect's
:class:`~saferouter.gateway.dialect.StreamWatch` reads usage, the stream's end and any
in-band failure. The request is settled before the event the watch calls terminal goes
out (chat's ``data: [DONE]``, a Responses terminal event, Messages' ``message_stop``)
or, with none, before the body ends, so a client that saw the end of its stream is
always in the books. If the upstream fails or stalls mid-stream, the client gets the
API's in-band error event (:meth:`~saferouter.gateway.dialect.Dialect.stream_error`)
and no end.
"""

from __future__ import annotations

import logging

import attrs
import httpcore
import trio

from ..delivery import ClientDelivery
from ..errors import ApiError, ParseError, ServiceUnavailable, StorageError, UpstreamBadGateway
from ..sse import SSEEvent
from ..storage.records import ActivityOutcome
from .attempt import Attempt
from .books import RequestBooks
from .dialect import Dialect, StreamWatch
from .receipts import Receipt
from .redact import Redactor
from .route_stats import RouteStats
from .usage_cost import CostHold

log = logging.getLogger("saferouter")


class StreamRelay:
    def __init__(
        self,
        winner: Attempt,
        *,
        books: RequestBooks,
        idle_timeout_s: float,
        dialect: Dialect,
        watch: StreamWatch,
        client_wants_usage: bool,
        receipt: Receipt | None = None,
        delivery: ClientDelivery | None = None,
        state_cost: bool = False,
        route_stats: RouteStats | None = None,
    ) -> None:
        assert winner.response is not None and winner.decoder is not None
        assert winner.chunks is not None
        self._response = winner.response
        self._chunks = winner.chunks
        self._decoder = winner.decoder
        self._prelude: list[SSEEvent] | None = winner.prelude
        self._books = books
        self._idle_timeout_s = idle_timeout_s
        self._provider_name = winner.endpoint.provider.name
        self._redactor = Redactor.for_key(winner.endpoint.api_key)
        self._client_wants_usage = client_wants_usage
        self._dialect = dialect
        self.watch = watch
        self._finished = False
        self._first_byte_at: float | None = winner.first_byte_at
        self.error: ApiError | None = None  # what ends the stream instead of its end
        self._receipt = receipt
        self._delivery = delivery
        # usage.include: the usage held back until settled, then stated with the charge
        self._cost_hold = CostHold() if state_cost else None
        self._route_stats = route_stats  # fed what this stream measured, once served
        self._attempt_started = winner.started
        self._model_id = winner.model.id

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._next()
        except StopAsyncIteration:
            await self._finish_receipt()  # every byte was handed over: the end is known
            raise
        if self._receipt is not None:
            self._receipt.sent(chunk)
        return chunk

    async def _finish_receipt(self) -> None:
        """Seal and write the receipt, fed every byte handed to the client, once the
        request is settled (shielded inside: it is written even when cancelled)."""
        receipt, charge = self._receipt, self._books.charge
        # an unsettled request's receipt stays pending: there is no charge to state
        if receipt is not None and charge is not None and not self._books.unsettled:
            self._receipt = None
            receipt.usage = self.watch.raw_usage
            try:
                await receipt.finish(charge)
            except StorageError as exc:
                # Every byte went out and the request is charged: the stream ends whole
                # (an exception here would reach hypercorn and cut the response short,
                # after its [DONE]). Its receipt stays pending; it is this owner's, so
                # the next start of this replica marks it lost.
                log.warning("a stream's receipt was not written: %s", exc)

    async def _next(self) -> bytes:
        if self._prelude is not None:
            prelude, self._prelude = self._prelude, None
            out = await self._relay_events(prelude)
            if out:
                return out
        while not self._finished:
            chunk = await self._next_upstream_chunk()
            if chunk is None:
                break
            self._decoder.feed(chunk)
            try:
                events = list(self._decoder.events())
            except ParseError:
                self.error = UpstreamBadGateway(
                    f"{self._provider_name} sent an SSE line over the size limit",
                    code="upstream_event_too_large",
                )
                break
            out = await self._relay_events(events)
            if out:
                return out
        if self._finished:
            raise StopAsyncIteration
        self._finished = True
        await self._close_upstream()
        rest = None if self.error is not None else self._decoder.close()
        if rest is not None:
            self._observe(rest)
        watch = self.watch
        if self.error is None and not watch.complete and not watch.failed:
            self.error = UpstreamBadGateway(
                f"{self._provider_name} ended the stream without [DONE] or a final event",
                code="upstream_stream_incomplete",
            )
        if self.error is not None:
            await self._settle(
                status=502, outcome=ActivityOutcome.ERROR, error_type=self.error.code
            )
            return self._released() + self._tail(rest) + self._error_event()
        await self._settle_end()
        if self._books.unsettled:  # not in the books: not complete
            return self._released() + self._tail(rest) + self._error_event()
        out = self._released() + self._tail(rest)
        if out:
            return out
        raise StopAsyncIteration

    def _tail(self, rest: SSEEvent | None) -> bytes:
        """The last event, which came without the blank line that ends an event."""
        if rest is None:
            return b""
        return self._held(rest, self._redacted(rest))

    async def _relay_events(self, events: list[SSEEvent]) -> bytes:
        parts: list[bytes] = []
        for event in events:
            usage_only = self._observe(event)
            if usage_only and not self._client_wants_usage:
                continue
            if self.watch.is_terminal(event):
                await self._settle_end()
                parts.append(self._released())
                if self._books.unsettled:  # not in the books: not complete, no [DONE]
                    return b"".join(parts) + self._error_event()
            parts.append(self._held(event, self._redacted(event)))
        return b"".join(parts)

    def _held(self, event: SSEEvent, raw: bytes) -> bytes:
        """What of ``event`` (sent as ``raw``) goes out now: all of it, unless the cost
        is to be stated (usage.include) and a usage is held back until settlement."""
        if self._cost_hold is None:
            return raw
        return self._cost_hold.hold(self._redacted_data(event), raw)

    def _released(self) -> bytes:
        """What was held back, the charge stated in its usage once settled (none when
        the store refused the settlement: nothing is charged yet)."""
        if self._cost_hold is None:
            return b""
        charged = None
        if self._books.charge is not None and not self._books.unsettled:
            charged = self._books.key_charge_micro_usd(self.watch.usage, self.watch.text_bytes)
        return self._cost_hold.release(charged)

    def _observe(self, event: SSEEvent) -> bool:
        """Account for the event as redacted: the usage object it may carry goes into the
        receipt as the provider reported it, so it must hold no credential either."""
        redacted = self._redacted_data(event)
        if redacted != event.data:  # the watch reads what the client is sent
            event = attrs.evolve(event, data=redacted)
        return self.watch.observe(event)

    def _redacted_data(self, event: SSEEvent) -> str | None:
        """The event's data as the client is sent it (see :meth:`_redacted`)."""
        if event.data is None:
            return None
        redact = self._redactor.text if _is_error(event) else self._redactor.known_text
        return redact(event.data)

    def _redacted(self, event: SSEEvent) -> bytes:
        """The event's bytes without the provider key; an in-band error event (the
        provider's own text, which may quote credentials) without any credential."""
        if _is_error(event):
            return self._redactor.event(event.raw)
        return self._redactor.known(event.raw)

    async def _next_upstream_chunk(self) -> bytes | None:
        """The next piece of the upstream body; None at its end or on failure."""
        with trio.move_on_after(self._idle_timeout_s) as scope:
            try:
                return await self._chunks.__anext__()
            except StopAsyncIteration:
                return None
            except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
                self.error = UpstreamBadGateway(
                    f"{self._provider_name} broke off the stream", code="upstream_stream_failed"
                )
                return None
        if scope.cancelled_caught:
            self.error = UpstreamBadGateway(
                f"{self._provider_name} sent nothing for {self._idle_timeout_s:g} s; "
                "the stream was abandoned",
                code="upstream_stream_failed",
            )
        return None

    async def _settle_end(self) -> None:
        """The upstream finished its stream; an error event it sent makes it a failure.
        (Called at the terminal event and again at the body's end: settled once.)"""
        if self.watch.failed:
            await self._settle(
                status=200, outcome=ActivityOutcome.ERROR, error_type="upstream_error_event"
            )
            return
        first = self._books.charge is None  # measured once, when it is served for good
        await self._settle(status=200, outcome=ActivityOutcome.OK)
        usage = self.watch.usage
        if first and usage is not None and not self._books.unsettled:
            self._measured(usage.output_tokens)

    def _measured(self, output_tokens: int) -> None:
        """This served stream's time to first byte (from its attempt's start) and its
        output rate, into the worker's figures (``provider.sort``)."""
        first_byte_at = self._first_byte_at
        if self._route_stats is None or first_byte_at is None:
            return
        self._route_stats.record(
            self._model_id,
            ttfb_s=first_byte_at - self._attempt_started,
            output_tokens=output_tokens,
            generation_s=self._books.clock.now() - first_byte_at,
        )

    async def _settle(
        self, *, status: int, outcome: ActivityOutcome, error_type: str | None = None
    ) -> None:
        """Settle; when the store refuses it (``books.unsettled``: kept to write once it
        answers), the stream ends with an error event instead of its end."""
        try:
            await self._books.settle(
                status=status,
                outcome=outcome,
                usage=self.watch.usage,
                estimated_text_bytes=self.watch.text_bytes,
                usage_estimated=self.watch.usage_estimated,
                ttfb_s=self._first_byte_at,
                error_type=error_type,
                response_id=self.watch.response_id,
                finish_reason=self.watch.finish_reason,
            )
        except StorageError:  # kept by the books; the heartbeat logs the outage
            self._finished = True
            await self._close_upstream()
            self.error = ServiceUnavailable(
                "The gateway could not record this request: its database is unreachable. "
                "What was relayed is billed once it is back."
            )

    def _error_event(self) -> bytes:
        assert self.error is not None
        return self._dialect.stream_error(self.error)

    async def _close_upstream(self) -> None:
        with trio.CancelScope(shield=True):
            await self._response.aclose()

    async def aclose(self) -> None:
        """The HTTP layer's cleanup: after the end, or when the client went away mid-stream."""
        if not self._finished:
            self._finished = True
            await self._close_upstream()
            stalled = self._delivery is not None and self._delivery.stalled
            with trio.CancelScope(shield=True):
                await self._settle(
                    status=499,
                    outcome=(
                        ActivityOutcome.CLIENT_STALLED if stalled else ActivityOutcome.CLIENT_CLOSED
                    ),
                    error_type="client_send_timeout" if stalled else "client_disconnected",
                )
        await self._finish_receipt()
        await self._close_upstream()


def _is_error(event: SSEEvent) -> bool:
    """An in-band error event: the provider's own text, which may quote credentials. An
    ``error`` that is null is none: every response object of a Responses stream has one
    (``"error": null``), around the model's whole answer, which may rightly quote
    ``sk-…`` (an unreadable event naming "error" counts, to be safe)."""
    if event.event == "error":
        return True
    if event.data is None or '"error"' not in event.data:
        return False  # the common case: no parse
    data = event.json()
    if not isinstance(data, dict):
        return True
    response = data.get("response")
    return bool(data.get("error")) or (isinstance(response, dict) and bool(response.get("error")))
