"""Bring your own key in the pipeline, in process (issue 13 §3–§4): whose provider key
each attempt carries, what happens when the provider refuses it (with and without
``byok_fallback``), the circuits it never touches, the fee it is billed at, and the 409
for a key sealed to another build. Keys are sealed with ``sealing.seal`` to the
harness's BYOK key pair, exactly as a client seals them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import nacl.public
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd, reservation_micro_usd
from saferouter.byok import sealing
from saferouter.config import BreakerPolicy, Settings
from saferouter.gateway.receipts import RECEIPT_HEADER
from saferouter.storage import ActivityEntry, ActivityFilter

from .pipeline_harness import (
    EPOCH_S,
    MEASUREMENT,
    Harness,
    fake_model,
    read_all,
    running_pipeline,
    with_models,
)
from .test_receipts import receipt_of

OWN = "sk-own-provider-key-0123456789"  # the client's key at provider `fake`
OPERATOR = "Bearer sk-upstream-secret-1234"  # gateway_settings' FAKE_API_KEY
START = dt.datetime.fromtimestamp(EPOCH_S, dt.UTC)
USED = Usage(prompt_tokens=3, output_tokens=2)  # what the scripted upstream reports


def chains(settings: Settings, *, fee_bp: int = 0, **changes: Any) -> Settings:
    """``mine`` (provider fake, whose key the client brings) falls back to ``theirs``
    (provider fake2, the operator's key only); ``mine-down`` answers 503."""
    settings = with_models(
        settings,
        mine=fake_model(settings, "mine", "ok", fallbacks=("theirs",)),
        theirs=fake_model(settings, "theirs", "ok", provider="fake2"),
        down=fake_model(settings, "down", "status:503", fallbacks=("theirs",)),
    )
    catalog = attrs.evolve(settings.catalog, byok_fee_bp=fee_bp)
    return attrs.evolve(settings, catalog=catalog, audit_rate_ppm=0, **changes)


async def entries(p: Harness) -> list[ActivityEntry]:
    found = await p.store.activity(ActivityFilter(limit=100))
    return sorted(found, key=lambda e: (e.created_at, e.request_id, e.attempt))


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_an_own_key_goes_upstream_and_only_the_fee_is_charged(
    tmp_path: Path, autojump_clock: object, stream: bool
) -> None:
    async with running_pipeline(tmp_path, lambda s: chains(s, fee_bp=1000)) as p:
        await p.bring_key(p.secret, "fake", OWN)
        reply = await p.send("mine", stream=stream)
        body = await read_all(reply) if stream else reply.body
        assert reply.status == 200 and OWN.encode() not in body
        assert p.upstream.authorizations == [f"Bearer {OWN}"]  # the operator's never
        model = p.ports.settings.catalog.models["mine"]
        fee_price = model.pricing.base.fee(1000)  # 10 % of each price (no peak)
        assert fee_price.input == model.pricing.base.input // 10
        [entry] = await entries(p)
        assert (entry.byok, entry.outcome) == (True, "ok")
        assert entry.cost_micro_usd == cost_micro_usd(USED, fee_price) > 0
        assert entry.cost_micro_usd < cost_micro_usd(USED, model.pricing.base)
        books = await p.store.books(await p.key_id(p.secret))
        assert (books.spent_micro_usd, books.reserved_micro_usd) == (entry.cost_micro_usd, 0)
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["byok"] is True and receipt["attempts"][0]["byok"] is True
        assert receipt["prices"]["input_micro_usd_per_mtok"] == fee_price.input
        assert receipt["cost_micro_usd"] == entry.cost_micro_usd


async def test_a_key_without_own_keys_and_other_providers_use_the_operator_key(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        await p.bring_key(p.secret, "fake", OWN)
        other = await p.new_key()
        await p.send("mine", key=other)  # another key: none of its own
        await p.send("theirs")  # this key, at a provider it brought no key for
        assert p.upstream.authorizations == [OPERATOR, OPERATOR]
        assert [e.byok for e in await entries(p)] == [False, False]


async def test_a_key_sealed_to_another_build_is_refused_before_admission(
    tmp_path: Path, autojump_clock: object
) -> None:
    other_build = nacl.public.PrivateKey.generate().public_key
    async with running_pipeline(tmp_path, chains) as p:
        await p.bring_key(p.secret, "fake", OWN, sealed_to=other_build, measurement="ab" * 48)
        error = await p.error("mine")
        assert (error.status, error.code, error.error_type) == (
            409,
            "byok_key_sealed_to_other_build",
            "invalid_request_error",
        )
        assert error.headers["x-should-retry"] == "false"  # no SDK retry can open it
        assert "ab" * 48 in error.message and MEASUREMENT in error.message
        assert sealing.fingerprint(OWN) in error.message and OWN not in error.message
        assert p.upstream.authorizations == []  # nothing sent, nothing reserved or logged
        assert await entries(p) == []
        # only a request that would use the stale key is refused
        assert (await p.send("theirs")).status == 200


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_a_refused_own_key_ends_the_request_without_byok_fallback(
    tmp_path: Path, autojump_clock: object, stream: bool
) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        await p.bring_key(p.secret, "fake", OWN)
        p.upstream.refused_keys.add(OWN)  # its 401 body quotes the key back
        error = await p.error("mine", stream=stream)
        assert (error.status, error.code, error.error_type) == (
            403,
            "byok_key_rejected",
            "permission_error",
        )
        assert "Fake upstream" in error.message and "401" in error.message
        assert sealing.fingerprint(OWN) in error.message
        assert OWN not in error.body().decode()
        # neither the operator's key for `mine` nor the operator-paid `theirs` was tried
        assert p.upstream.authorizations == [f"Bearer {OWN}"]
        [entry] = await entries(p)
        assert (entry.byok, entry.outcome, entry.error_type) == (
            True,
            "error",
            "byok_key_rejected",
        )


async def test_with_byok_fallback_the_operator_key_serves_the_same_model(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, lambda s: chains(s, fee_bp=500)) as p:
        await p.bring_key(p.secret, "fake", OWN, fallback=True)
        p.upstream.refused_keys.add(OWN)
        reply = await p.send("mine")
        assert reply.headers["X-SafeRouter-Model"] == "mine"
        assert p.upstream.authorizations == [f"Bearer {OWN}", OPERATOR]
        first, second = await entries(p)
        assert (first.byok, first.error_type, second.byok, second.outcome) == (
            True,
            "byok_key_rejected",
            False,
            "ok",
        )
        model = p.ports.settings.catalog.models["mine"]
        assert second.cost_micro_usd == cost_micro_usd(USED, model.pricing.base)  # no fee
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["byok"] is False
        assert [(a["byok"], a["status"]) for a in receipt["attempts"]] == [
            (True, 403),
            (False, 200),
        ]
        # the refused key is not tried again in this request, the operator's is
        await p.send("mine", models=["mine", "theirs"])
        assert p.upstream.authorizations[2:] == [f"Bearer {OWN}", OPERATOR]


async def test_an_own_key_never_opens_or_probes_a_shared_circuit(
    tmp_path: Path, autojump_clock: object
) -> None:
    policy = BreakerPolicy(failures_to_open=1, cooldown_s=30)
    async with running_pipeline(tmp_path, lambda s: chains(s, breaker=policy)) as p:
        await p.bring_key(p.secret, "fake", OWN, fallback=False)
        p.upstream.refused_keys.add(OWN)
        assert (await p.error("mine")).code == "byok_key_rejected"  # a 401
        p.upstream.refused_keys.clear()
        reply = await p.send("down")  # 503 with the own key: fails over to `theirs`
        assert reply.headers["X-SafeRouter-Model"] == "theirs"
        assert p.ports.breaker.snapshot(trio.current_time()) == {}
        other = await p.new_key()
        assert (await p.send("fake/ok", key=other)).status == 200  # right after: served
        # and the other way round: the operator's circuit open, the own key still goes
        assert (await p.error("fake/status:500", key=other)).status == 502
        assert (await p.error("fake/ok", key=other)).code == "circuit_open"
        assert (await p.send("mine")).headers["X-SafeRouter-Model"] == "mine"
        assert p.upstream.authorizations[-1] == f"Bearer {OWN}"


async def test_a_key_without_credits_is_served_through_its_own_key_alone(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        broke = await p.new_key(credits_micro_usd=0)  # metered, nothing to spend
        await p.bring_key(broke, "fake", OWN, fallback=True)
        reply = await p.send("mine", key=broke)  # its chain's `theirs` is not affordable
        assert reply.status == 200 and p.upstream.authorizations == [f"Bearer {OWN}"]
        [entry] = await entries(p)
        assert (entry.byok, entry.cost_micro_usd) == (True, 0)
        # admitted for its own key alone: refused there, the operator's may not stand in
        p.upstream.refused_keys.add(OWN)
        assert (await p.error("mine", key=broke)).code == "byok_key_rejected"
        assert p.upstream.authorizations[1:] == [f"Bearer {OWN}"]
        assert (await p.error("theirs", key=broke)).status == 402  # no own key there
        books = await p.store.books(await p.key_id(broke))
        assert (books.balance_micro_usd, books.reserved_micro_usd) == (0, 0)


async def test_credits_for_the_fee_but_not_the_price_reserve_the_fee(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        slow = fake_model(settings, "slow", "slowstart:1000", fallbacks=("theirs",))
        return with_models(chains(settings, fee_bp=100), slow=slow)

    async with running_pipeline(tmp_path, configure) as p:
        # the chain's worst case is ~1200 micro-USD (100 output tokens at $10/M and the
        # prompt's bytes), 1 % of it for the own key's attempt: 100 covers only that
        key = await p.new_key(credits_micro_usd=100)
        await p.bring_key(key, "fake", OWN)
        held: list[int] = []

        async def request() -> None:
            assert (await p.send("slow", key=key)).status == 200

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request)
            await trio.sleep(0.5)  # mock time: the upstream answers at 1 s
            held.append((await p.store.books(await p.key_id(key))).reserved_micro_usd)
        model = p.ports.settings.catalog.models["slow"]
        fee_price = model.pricing.base.fee(100)
        own_worst = reservation_micro_usd(model, p.sent[-1], None, price=fee_price)
        full_worst = reservation_micro_usd(
            model, p.sent[-1], None, price=model.pricing.price_at(START)
        )
        assert held == [own_worst] and 0 < own_worst <= 100 < full_worst
        [entry] = await entries(p)
        assert entry.byok and entry.cost_micro_usd == cost_micro_usd(USED, fee_price)


async def test_with_byok_fallback_only_a_refusal_lets_the_operator_key_stand_in(
    tmp_path: Path, autojump_clock: object
) -> None:
    """The operator's key stands in for the client's only when the provider refused it:
    a 5xx of the client's key fails over to the next model, and a hedge while the
    client's key is slow starts the next model, never the operator's for the same one."""

    def configure(settings: Settings) -> Settings:
        hedged = fake_model(settings, "hedged", "slowstart:1000", fallbacks=("theirs",))
        return with_models(chains(settings), hedged=attrs.evolve(hedged, hedge_after_ms=100))

    async with running_pipeline(tmp_path, configure) as p:
        await p.bring_key(p.secret, "fake", OWN, fallback=True)
        reply = await p.send("down")  # a 503 through the client's key
        assert reply.headers["X-SafeRouter-Model"] == "theirs"
        reply = await p.send("hedged")  # slow: the hedge starts `theirs`, which wins
        assert reply.headers["X-SafeRouter-Model"] == "theirs"
        sent = [
            (r["model"], a)
            for r, a in zip(p.upstream.requests, p.upstream.authorizations, strict=True)
        ]
        assert sent == [
            ("status:503", f"Bearer {OWN}"),
            ("ok", OPERATOR),  # `theirs`, the next model: not `down` with the operator's key
            ("slowstart:1000", f"Bearer {OWN}"),
            ("ok", OPERATOR),  # the hedge: `theirs`, not `hedged` with the operator's key
        ]
