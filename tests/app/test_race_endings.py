"""How a race ends when no answer comes (attack on issue 13).

A hedged race that ends in an error meant for the client: with hedging, attempts run in
a trio nursery; an error that ends the request (an own key refused without
``byok_fallback``, a provider's 400) used to be raised inside it, where trio wraps it in
an ``ExceptionGroup``: the pipeline's ``except UpstreamError`` missed it, the request
was settled as if the client had left (499) and the client got a 500. It must reach
the client as itself, with the other attempts cancelled.

A redirect from a provider: no answer, so nothing to relay or bill (it was relayed as a
302 without its ``Location`` and billed an estimate of its body).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from saferouter.config import Settings
from saferouter.storage.records import ActivityOutcome

from .pipeline_harness import fake_model, running_pipeline, with_models
from .test_byok_pipeline import OPERATOR, OWN, chains, entries


def hedged(settings: Settings) -> Settings:
    """``slow`` (provider fake2, the operator's key, answers at 500 ms) hedges after
    100 ms into ``mine`` (provider fake) or ``bad`` (a 400)."""
    settings = chains(settings)
    hedge = {"hedge_after_ms": 100, "provider": "fake2"}
    return with_models(
        settings,
        slow=fake_model(settings, "slow", "slowstart:500", fallbacks=("mine",), **hedge),
        slowbad=fake_model(settings, "slowbad", "slowstart:500", fallbacks=("bad",), **hedge),
        bad=fake_model(settings, "bad", "status:400"),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_an_own_key_refused_in_a_hedge_is_the_clients_403(
    tmp_path: Path, autojump_clock: object, stream: bool
) -> None:
    async with running_pipeline(tmp_path, hedged) as p:
        await p.bring_key(p.secret, "fake", OWN)  # no byok_fallback
        p.upstream.refused_keys.add(OWN)
        error = await p.error("slow", stream=stream)
        assert (error.status, error.code) == (403, "byok_key_rejected")
        # the operator's key went to fake2 (slow) only, never to fake
        assert p.upstream.authorizations == [OPERATOR, f"Bearer {OWN}"]
        assert p.upstream.cancelled == 1  # the slow attempt was stopped, not served
        found = [(e.attempt, e.byok, e.outcome, e.error_type) for e in await entries(p)]
        assert found == [
            (1, False, ActivityOutcome.CANCELLED, "lost_race"),
            (2, True, ActivityOutcome.ERROR, "byok_key_rejected"),
        ]


async def test_a_providers_400_in_a_hedge_is_the_clients_400(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, hedged) as p:
        error = await p.error("slowbad")
        assert error.status == 400
        outcomes = [e.outcome for e in await entries(p)]
        assert outcomes == [ActivityOutcome.CANCELLED, ActivityOutcome.ERROR]


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_a_redirect_is_no_answer_and_costs_nothing(
    tmp_path: Path, autojump_clock: object, status: int, stream: bool
) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        await p.bring_key(p.secret, "fake", OWN)
        error = await p.error(f"fake/status:{status}", stream=stream)
        assert (error.status, error.code) == (502, "upstream_error")
        [entry] = await entries(p)
        assert (entry.byok, entry.outcome, entry.cost_micro_usd) == (True, "error", 0)
