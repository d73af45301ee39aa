"""One request's accounting: admission (rate limits + reservation), the record of each
attempt, and settlement — durable before the response counts as complete.

The reservation is an upper bound on what the request can cost: the prompt's bytes, the
larger token limit for each of ``n`` choices, priced at the dearest model of the whole
chain. Every candidate is priced, not the first ``max_attempts``: the race skips an
unconfigured provider or an open circuit without spending an attempt, so any candidate
can be reached. The race is handed :attr:`RequestBooks.plans` — exactly the attempts
priced — so it cannot start one the reservation did not cover. Requests with non-text
input have no such bound; a metered key is refused them (400 ``unsupported_content``).

An attempt with the client's own provider key is priced at the catalog's
``byok_fee_percent`` of the model's price (the provider bills the client): in the
reservation, the charge, the activity entry and the receipt alike. When the whole
chain's worst case does not fit the key's credits but the attempts with its own keys
alone do, the store admits those alone, in the same transaction (a key with no credits
and a fee of 0 is served through its own keys only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

import attrs

from ..accounting import (
    Usage,
    cost_micro_usd,
    estimate_tokens,
    reservation_micro_usd,
    split_charge,
    usd_text,
)
from ..catalog import Price
from ..clock import Clock
from ..errors import (
    AuthenticationFailed,
    InsufficientQuota,
    InvalidRequest,
    RateLimited,
    StorageError,
)
from ..observe import RequestTrace
from ..storage import (
    ActivityEntry,
    Admission,
    AdmissionRequest,
    KeyIdentity,
    NewReceipt,
    Settlement,
    Store,
)
from ..storage.records import ActivityOutcome
from .dialect import ApiRequest
from .routing import Plan
from .tracing import trace_settled
from .unsettled import voided


@attrs.frozen
class Charge:
    """What settlement decided, as a receipt states it: the request's status and outcome,
    the attempt that served (None when none did) at the price applied, and the cost
    debited (0 with accounting off: nothing is), estimated when no usage was reported."""

    status: int
    outcome: ActivityOutcome
    cost_micro_usd: int = 0
    estimated: bool = False
    plan: Plan | None = None
    price: Price | None = None


def rate_headers(admission: Admission | None) -> dict[str, str]:
    """``X-RateLimit-*`` of the key's requests-per-minute window, as ``admission`` saw
    it; none when it has no limit."""
    if admission is None or admission.rate_limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(admission.rate_limit),
        "X-RateLimit-Remaining": str(max(0, admission.rate_remaining or 0)),
        "X-RateLimit-Reset": f"{admission.rate_reset_s:.0f}",
    }


def refused_for_key_or_rate(admission: Admission) -> AuthenticationFailed | RateLimited:
    """The error of an admission refused for the key itself (revoked since it was
    authenticated: 401) or a rate limit (429, with ``Retry-After``)."""
    if admission.refusal == "revoked":  # between authentication and now
        return AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    limit = "requests" if admission.refusal == "requests_per_minute" else "tokens"
    return RateLimited(
        f"Rate limit reached: this key's {limit} per minute are used up. "
        f"Try again in {admission.retry_after_s} s.",
        headers={**rate_headers(admission), "Retry-After": str(admission.retry_after_s)},
    )


@attrs.define
class RequestBooks:
    store: Store | None  # None: accounting is off
    key: KeyIdentity
    request_id: str
    requested_model: str
    streamed: bool
    request_bytes: int
    clock: Clock
    started: float  # the request's start (``Clock.now``)
    priced_at: dt.datetime
    created_at: float  # the request's start, on the wall clock
    plans: tuple[Plan, ...] = ()  # the attempts the reservation priced: the race's
    byok_fee_bp: int = 0  # what an attempt with the client's own key pays, of the price
    reserved_micro_usd: int = 0
    admission: Admission | None = None
    attempts: list[ActivityEntry] = attrs.Factory(list)  # finished, not serving
    serving: tuple[int, Plan] | None = None  # the attempt number and plan that serve
    charge: Charge | None = None  # once settled
    # where a settlement the store refused goes (unsettled.py); None: nowhere
    keep_unsettled: Callable[[Settlement], None] | None = None
    unsettled: bool = False  # the store refused the settlement
    # what every activity entry of the request says of it (issue 15): the API spoken,
    # the calling app (X-Title, HTTP-Referer) and routing's note
    api: str = "chat"
    app_title: str | None = None
    app_referer: str | None = None
    note: str | None = None
    # the earlier turns a Responses follow-up makes the provider read again (known exactly
    # from the books): part of any estimated prompt, as they are of the reservation
    context_tokens: int = 0
    trace: RequestTrace | None = None  # told what settlement decided (tracing.py)

    @classmethod
    async def admit(
        cls,
        store: Store | None,
        *,
        key: KeyIdentity,
        request_id: str,
        request: ApiRequest,
        body: bytes,
        plans: list[Plan],
        started: float,
        clock: Clock,
        byok_fee_bp: int = 0,
        receipt_id: str | None = None,
        keep_unsettled: Callable[[Settlement], None] | None = None,
        requested_model: str,
        api: str = "chat",
        app_title: str | None = None,
        app_referer: str | None = None,
        note: str | None = None,
    ) -> RequestBooks:
        """Check the key's limits and reserve the worst case of every attempt the request
        may end up on (or of those with the client's own keys, when only they fit);
        raises 400 (non-text input on a metered key), 402 or 429. An admitted request's
        ``receipt_id`` is recorded pending in the same write. ``requested_model`` (the
        route's: the first known model, as the client named it), ``api``, ``app_title``,
        ``app_referer`` and ``note`` go into every activity entry of the request, a
        refusal's too."""
        wall = clock.wall()
        now = dt.datetime.fromtimestamp(wall, dt.UTC)
        books = cls(
            store=store,
            key=key,
            request_id=request_id,
            requested_model=requested_model,
            streamed=request.stream,
            request_bytes=len(body),
            context_tokens=request.context_tokens,
            clock=clock,
            started=started,
            priced_at=now,
            created_at=wall,
            plans=tuple(plans),
            byok_fee_bp=byok_fee_bp,
            keep_unsettled=keep_unsettled,
            api=api,
            app_title=app_title,
            app_referer=app_referer,
            note=note,
        )
        if store is None:
            return books
        worst = own_worst = None  # no bound: the store refuses it for a metered key
        if not request.non_text:
            costs = [
                reservation_micro_usd(
                    plan.model,
                    body,
                    request.max_tokens,
                    price=books.price_of(plan),
                    choices=request.choices,
                    context_tokens=request.context_tokens,
                )
                for plan in books.plans
            ]
            worst = max(costs)
            own = [c for c, plan in zip(costs, books.plans, strict=True) if plan.own_key]
            if own and len(own) < len(costs):  # a narrower set exists: the own keys'
                own_worst = max(own)
        admission = await store.admit(
            AdmissionRequest(
                key_id=key.id,
                request_id=request_id,
                reserve_micro_usd=worst,
                now=wall,
                requested_model=requested_model,
                streamed=request.stream,
                receipt_id=receipt_id,
                own_keys_reserve_micro_usd=own_worst,
                api=api,
                app_title=app_title,
                app_referer=app_referer,
                note=note,
            )
        )
        books.admission = admission
        if admission.admitted:
            books.reserved_micro_usd = admission.reserved_micro_usd
            if admission.own_keys_only:  # only they fit: the race may start no other
                books.plans = tuple(plan for plan in books.plans if plan.own_key)
            return books
        if admission.refusal == "unsupported_content":
            raise InvalidRequest(
                "This key is metered, and the gateway bounds the cost of text only; this "
                f"request also has {'; '.join(n.where for n in request.non_text)}. Send text "
                "only, or use an unmetered key.",
                param=request.non_text[0].param,  # the field of the first one
                code="unsupported_content",
                headers=books.rate_headers(),
            )
        if admission.refusal == "insufficient_quota":
            raise InsufficientQuota(
                "This key's credits do not cover this request's worst case "
                f"(balance {usd_text(admission.balance_micro_usd)} USD). Top up, or lower "
                "max_tokens.",
                headers=books.rate_headers(),
            )
        raise refused_for_key_or_rate(admission)

    def price_of(self, plan: Plan) -> Price:
        """What ``plan`` is billed at: the model's price at the request's start, or the
        BYOK fee's share of it when the plan carries the client's own key."""
        price = plan.model.pricing.price_at(self.priced_at)
        return price.fee(self.byok_fee_bp) if plan.own_key is not None else price

    def rate_headers(self) -> dict[str, str]:
        """The key's rate limit as the admission left it (none before one)."""
        return rate_headers(self.admission)

    def record_attempt(
        self,
        *,
        number: int,
        plan: Plan,
        status: int,
        outcome: ActivityOutcome,
        error_type: str | None,
        started: float,
        first_byte_at: float | None,
        ended_at: float | None,
    ) -> None:
        """An attempt that will not serve the response (failed over, or lost a race)."""
        self.attempts.append(
            self._entry(
                number=number,
                plan=plan,
                status=status,
                outcome=outcome,
                usage=Usage(),
                cost=0,
                estimated=False,
                error_type=error_type,
                started=started,
                first_byte_at=first_byte_at,
                ended_at=ended_at,
            )
        )

    def serve(self, number: int, plan: Plan) -> None:
        """The attempt whose response goes to the client (its latency and time to first
        byte are the client's: from the request's start)."""
        self.serving = (number, plan)

    async def settle(
        self,
        *,
        status: int,
        outcome: ActivityOutcome,
        usage: Usage | None = None,
        estimated_text_bytes: int = 0,
        usage_estimated: bool = False,
        ttfb_s: float | None = None,
        error_type: str | None = None,
        seal: Callable[[Charge], NewReceipt] | None = None,
        relayed: bool = True,
        response_id: str | None = None,
        finish_reason: str | None = None,
    ) -> Charge:
        """Release, charge and record every attempt, once (a second call returns the
        first's :class:`Charge`). Without usage but with text relayed (a cut stream),
        bill an estimate and mark it so (``usage_estimated``: the usage given holds
        one, from the stream's watch). With no serving attempt (every candidate
        failed), ``status``/``error_type`` describe the request and nothing is charged.
        ``seal`` makes the request's signed receipt from the charge, and the receipt is
        written in the settlement's transaction (not called with accounting off).
        ``response_id`` (the upstream's id of the response) and ``finish_reason`` go into
        the serving attempt's entry.
        A settlement the store refuses (StorageError, raised) is kept to write when it
        answers (``unsettled.py``): as it is, or — unless its answer was ``relayed``
        already (a body goes out after this) — charging nothing."""
        if self.charge is not None:
            return self.charge
        self.charge = charge = Charge(status, outcome)
        traced = partial(  # the trace is told what this decides, once it has
            self._traced, error_type=error_type, response_id=response_id, finish=finish_reason
        )
        if self.store is None:
            traced(usage, 0)
            return charge
        cost = 0
        attempts = list(self.attempts)
        if self.serving is not None:
            number, plan = self.serving
            usage, estimated, price, cost = self._billed(plan, usage, estimated_text_bytes)
            estimated = estimated or usage_estimated  # part of a stream's usage guessed
            self.charge = charge = Charge(status, outcome, cost, estimated, plan, price)
            serving = self._entry(
                number=number,
                plan=plan,
                status=status,
                outcome=outcome,
                usage=usage,
                cost=cost,
                estimated=estimated,
                error_type=error_type,
                started=self.started,
                first_byte_at=ttfb_s,
                ended_at=None,
            )
            attempts.append(
                attrs.evolve(serving, response_id=response_id, finish_reason=finish_reason)
            )
        elif not attempts:
            attempts.append(
                ActivityEntry(
                    request_id=self.request_id,
                    attempt=0,
                    created_at=self.created_at,
                    key_id=self.key.id,
                    requested_model=self.requested_model,
                    served_model=None,
                    provider=None,
                    original_model=self.requested_model,
                    status=status,
                    outcome=outcome,
                    streamed=self.streamed,
                    error_type=error_type,
                )
            )
        # what every entry of the request says of it alike, set here where all pass
        attempts = [
            attrs.evolve(
                a,
                api=self.api,
                app_title=self.app_title,
                app_referer=self.app_referer,
                note=self.note,
            )
            for a in attempts
        ]
        traced(usage, cost)
        tokens = sum(e.prompt_tokens + e.completion_tokens for e in attempts)
        settlement = Settlement(
            key_id=self.key.id,
            request_id=self.request_id,
            reserved_micro_usd=self.reserved_micro_usd,
            cost_micro_usd=cost,
            tokens=tokens,
            attempts=tuple(attempts),
            now=self.clock.wall(),
            receipt=seal(charge) if seal is not None else None,
        )
        try:
            await self.store.settle(settlement)
        except StorageError:
            # the client will not be told it completed; the settlement is written once
            # the store answers (unsettled.py); settled it stays here: never twice
            self.unsettled = True
            if self.keep_unsettled is not None:
                served = self.serving is not None
                self.keep_unsettled(settlement if relayed else voided(settlement, served=served))
            raise
        return charge

    def _traced(
        self,
        usage: Usage | None,
        cost_micro_usd: int,
        *,
        error_type: str | None,
        response_id: str | None,
        finish: str | None,
    ) -> None:
        if self.trace is not None:
            trace_settled(
                self.trace,
                serving=self.serving,
                usage=usage,
                cost_micro_usd=cost_micro_usd,
                error_type=error_type,
                response_id=response_id,
                finish_reason=finish,
                now_s=self.clock.now(),
            )

    def key_charge_micro_usd(self, usage: Usage | None, estimated_text_bytes: int = 0) -> int:
        """What the key will be charged when the serving attempt settles with ``usage``
        (OpenRouter's ``usage.cost``, stated in the body or chunk before it goes out):
        the cost :meth:`settle` bills, capped as the store caps it — a metered key pays
        at most its reservation (``reserved_micro_usd`` is 0 for an unmetered one),
        the rest being the operator's overrun (storage/rules.py ``split_settlement``).
        0 with accounting off, or with no serving attempt: nothing is debited. (Only a
        reservation that recovery released meanwhile, its process taken for dead, is
        charged out of the balance instead, which may be less.)"""
        if self.store is None or self.serving is None:
            return 0
        cost = self._billed(self.serving[1], usage, estimated_text_bytes)[3]
        return split_charge(cost, self.reserved_micro_usd or None)[0]

    def _billed(
        self, plan: Plan, usage: Usage | None, estimated_text_bytes: int
    ) -> tuple[Usage, bool, Price, int]:
        """The usage billed (an estimate, marked so, for text relayed without a usage
        report), whether estimated, the price and the cost of the serving ``plan``."""
        estimated = False
        if usage is None and estimated_text_bytes:
            usage = Usage(
                prompt_tokens=estimate_tokens(self.request_bytes) + self.context_tokens,
                output_tokens=estimate_tokens(estimated_text_bytes),
            )
            estimated = True
        usage = usage or Usage()
        price = self.price_of(plan)
        return usage, estimated, price, cost_micro_usd(usage, price)

    def _entry(
        self,
        *,
        number: int,
        plan: Plan,
        status: int,
        outcome: ActivityOutcome,
        usage: Usage,
        cost: int,
        estimated: bool,
        error_type: str | None,
        started: float,
        first_byte_at: float | None,
        ended_at: float | None,
    ) -> ActivityEntry:
        end = ended_at if ended_at is not None else self.clock.now()
        model = plan.model
        return ActivityEntry(
            request_id=self.request_id,
            attempt=number,
            created_at=self.created_at,
            key_id=self.key.id,
            requested_model=self.requested_model,
            served_model=model.id,
            provider=model.provider,
            original_model=self.requested_model,
            status=status,
            outcome=outcome,
            latency_ms=round((end - started) * 1000, 3),
            ttfb_ms=(
                round((first_byte_at - started) * 1000, 3) if first_byte_at is not None else None
            ),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_micro_usd=cost,
            streamed=self.streamed,
            estimated=estimated,
            error_type=error_type,
            byok=plan.own_key is not None,
        )
