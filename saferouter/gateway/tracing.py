"""The request pipeline's part of a request's :class:`~saferouter.observe.RequestTrace`:
its attempts as observers see them, and what settlement decided.

Two moments fill it, each reached by every way a request ends, so no path can forget
them: the attempts are copied when the pipeline records them (a winner, every candidate
failed, or the client left before a byte — ``pipeline._record_attempts``), and the
outcome when the books settle (:meth:`~saferouter.gateway.books.RequestBooks.settle`,
called once per request whichever way it ended). A few attribute writes: no lock, no I/O.
"""

from __future__ import annotations

from ..accounting import Usage
from ..observe import AttemptTrace, RequestTrace
from .attempt import Attempt
from .routing import Plan


def attempt_trace(attempt: Attempt, *, cut_by: str | None) -> AttemptTrace:
    """``attempt`` as observers see it (numbers and names only); ``cut_by``: what cut it
    short, when it was cancelled without an error of its own."""
    error = attempt.error
    status = error.status if error is not None and not attempt.status else attempt.status
    return AttemptTrace(
        number=attempt.number,
        provider=attempt.model.provider,
        provider_kind=attempt.endpoint.provider.kind,
        model=attempt.model.id,
        upstream_model=attempt.model.upstream,
        started_by=attempt.started_by,
        started_s=attempt.started,
        first_byte_s=attempt.first_byte_at,
        ended_s=attempt.ended_at,
        outcome=attempt.outcome.value,
        status=status or None,
        error_type=error.code if error is not None else cut_by,
        byok=attempt.byok,
    )


def trace_settled(
    trace: RequestTrace,
    *,
    serving: tuple[int, Plan] | None,
    usage: Usage | None,
    cost_micro_usd: int,
    error_type: str | None,
    response_id: str | None,
    finish_reason: str | None,
    now_s: float,
) -> None:
    """What settlement decided: who served (the serving attempt ends now: a stream's
    attempt won at its first byte but ran until settlement), the usage and cost billed,
    why it failed. ``error_type`` is settlement's (a stream cut short says so here,
    though its status went out as 200)."""
    trace.error_type = error_type or trace.error_type
    trace.response_id, trace.finish_reason = response_id, finish_reason
    if serving is None:
        return
    number, plan = serving
    trace.served_model, trace.provider = plan.model.id, plan.model.provider
    trace.provider_kind = plan.endpoint.provider.kind
    trace.cost_micro_usd = cost_micro_usd
    if usage is not None:
        trace.input_tokens, trace.output_tokens = usage.prompt_tokens, usage.output_tokens
    for attempt in trace.attempts:
        if attempt.number == number:
            attempt.ended_s = now_s
