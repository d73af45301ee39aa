"""OpenRouter's dialect through the pipeline, in process: ``models`` without ``model``,
``provider`` preferences over the candidates (with figures this worker measured), and
``usage: {"include": true}`` stating the charge — never any of it sent upstream."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from saferouter.accounting import usd_text
from saferouter.catalog import Price, Pricing
from saferouter.config import Settings
from saferouter.errors import ApiError
from saferouter.gateway.receipts import RECEIPT_HEADER
from saferouter.gateway.upstream_body import STRIPPED_FIELDS
from saferouter.storage import ActivityEntry, ActivityFilter

from ..scripted import USAGE
from .pipeline_harness import Harness, fake_model, read_all, running_pipeline, with_models
from .test_receipts import quiet, receipt_of

OPENROUTER_FIELDS = {
    "models": ["fake2/ok"],
    "provider": {"order": ["fake2"], "sort": "price", "max_price": {"prompt": 100}},
    "usage": {"include": True},
    "transforms": ["middle-out"],
    "route": "fallback",
}


async def entries(harness: Harness) -> list[ActivityEntry]:
    found = await harness.store.activity(ActivityFilter(limit=100))
    return sorted(found, key=lambda e: (e.created_at, e.request_id, e.attempt))


def usd(micro: int) -> float:
    return micro / 1_000_000


async def test_models_alone_serve_the_first_known_and_note_the_skipped(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send(None, models=["gpt-4o", "fake/ok", "nowhere/x", "fake2/ok"])
        assert reply.status == 200
        assert reply.headers["X-SafeRouter-Model"] == "fake/ok"
        [entry] = await entries(p)
        assert entry.note == (
            "skipped models: gpt-4o (not in the catalog), nowhere/x (not in the catalog)"
        )
        assert [body["model"] for body in p.upstream.requests] == ["ok"]
        # what was asked for is the first known model, not the skipped name
        assert entry.requested_model == "fake/ok"
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["requested_model"] == "fake/ok"


async def test_a_skipped_model_is_not_the_requested_one_beside_models(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("gpt-4o", models=["fake2/ok"])
        assert reply.headers["X-SafeRouter-Model"] == "fake2/ok"
        assert "X-SafeRouter-Fallback-From" not in reply.headers  # fake2/ok was asked for
        [entry] = await entries(p)
        assert (entry.requested_model, entry.note) == (
            "fake2/ok",
            "skipped models: gpt-4o (not in the catalog)",
        )
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["requested_model"] == "fake2/ok"


async def test_models_fall_back_in_their_order(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path) as p:
        reply = await p.send("fake/status:503", models=["unknown-1", "fake2/ok"])
        assert reply.headers["X-SafeRouter-Model"] == "fake2/ok"
        assert reply.headers["X-SafeRouter-Fallback-From"] == "fake/status:503"
        assert [e.outcome for e in await entries(p)] == ["error", "ok"]


async def test_models_none_known_is_a_404(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path) as p:
        error = await p.error(None, models=["gpt-4o", "claude-3"])
        assert (error.status, error.code, error.param) == (404, "model_not_found", "models")
        assert p.upstream.requests == []


async def test_no_openrouter_field_reaches_the_upstream(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        await p.send("fake/ok", **OPENROUTER_FIELDS)
        await read_all(await p.send("fake/ok", stream=True, **OPENROUTER_FIELDS))
        assert len(p.upstream.raw) == 2
        for raw in p.upstream.raw:
            sent = json.loads(raw)
            assert not set(STRIPPED_FIELDS) & set(sent)
            assert sent["messages"] == [{"role": "user", "content": "hi"}]


async def test_order_puts_the_listed_provider_first(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path) as p:
        reply = await p.send(
            "fake/ok", models=["fake2/ok"], provider={"order": ["Fake upstream two"]}
        )
        assert reply.headers["X-SafeRouter-Provider"] == "fake2"
        [entry] = await entries(p)
        assert entry.note is None


async def test_without_fallbacks_a_failure_is_the_answer(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        error = await p.error(
            "fake/status:503", models=["fake2/ok"], provider={"allow_fallbacks": False}
        )
        assert error.status == 502 or error.status == 503
        assert [body["model"] for body in p.upstream.requests] == ["status:503"]


async def test_max_price_drops_the_dearer_candidate_and_notes_it(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        # fake: 1.25 / 10 USD per million tokens; fake2: 2.5 / 20
        reply = await p.send(
            "fake2/ok", models=["fake/ok"], provider={"max_price": {"completion": "15"}}
        )
        assert reply.headers["X-SafeRouter-Provider"] == "fake"
        [entry] = await entries(p)
        assert entry.note == "provider.max_price dropped fake2/ok"


@pytest.mark.parametrize(
    ("provider", "param"),
    [
        ({"only": ["deepseek"]}, "provider.only"),
        ({"ignore": ["fake", "fake2"]}, "provider.ignore"),
        ({"max_price": {"prompt": 1}}, "provider.max_price"),
    ],
)
async def test_a_preference_leaving_nothing_is_a_404_before_any_spend(
    tmp_path: Path, autojump_clock: object, provider: dict[str, Any], param: str
) -> None:
    async with running_pipeline(tmp_path) as p:
        error = await p.error("fake/ok", models=["fake2/ok"], provider=provider)
        assert (error.status, error.code, error.param) == (404, "no_allowed_candidate", param)
        assert p.upstream.requests == []
        assert (await p.store.books(await p.key_id(p.secret))).spent_micro_usd == 0


async def test_bad_or_unsupported_preferences_are_400s(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        bad = await p.error("fake/ok", provider={"sort": "cheapest"})
        assert (bad.status, bad.code, bad.param) == (400, "invalid_value", "provider.sort")
        unsupported = await p.error("fake/ok", provider={"zdr": True})
        assert (unsupported.status, unsupported.code) == (400, "unsupported_value")
        usage = await p.error("fake/ok", usage={"include": "yes"})
        assert (usage.status, usage.param) == (400, "usage.include")
        assert p.upstream.requests == []


def latencies(settings: Settings) -> Settings:
    return with_models(
        settings,
        slow=fake_model(settings, "slow", "slowstart:800"),
        fast=fake_model(settings, "fast", "slowstart:100", provider="fake2"),
    )


async def test_sort_by_latency_follows_what_this_worker_measured(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, latencies) as p:
        # unmeasured: the chain's own order
        first = await p.send("slow", stream=True, models=["fast"], provider={"sort": "latency"})
        assert first.headers["X-SafeRouter-Model"] == "slow"
        await read_all(first)
        await read_all(await p.send("fast", stream=True))
        slow, fast = p.ports.route_stats.figures("slow"), p.ports.route_stats.figures("fast")
        assert slow is not None and fast is not None
        assert (slow.ttfb_s, fast.ttfb_s) == (pytest.approx(0.8), pytest.approx(0.1))
        again = await p.send("slow", stream=True, models=["fast"], provider={"sort": "latency"})
        assert again.headers["X-SafeRouter-Model"] == "fast"
        await read_all(again)


async def test_throughput_is_output_tokens_over_generation_time(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        await read_all(await p.send("fake/slow:3:1000", stream=True))
        figures = p.ports.route_stats.figures("fake/slow:3:1000")
        assert figures is not None
        # 3 chunks 1 s apart: 3 s from the first byte to the end, 2 tokens reported
        assert figures.output_tokens_per_s == pytest.approx(USAGE["completion_tokens"] / 3)
        assert figures.samples == 1  # one stream, measured once
        await p.send("fake/ok")  # a body shows no generation time: not measured
        assert p.ports.route_stats.figures("fake/ok") is None


async def test_usage_include_states_the_charge_in_a_body(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        plain = await p.send("fake/ok")
        reply = await p.send("fake/ok", usage={"include": True})
        _, entry = await entries(p)
        assert entry.cost_micro_usd > 0
        stated = json.loads(reply.body)
        assert stated["usage"] == {**USAGE, "cost": usd(entry.cost_micro_usd)}
        # every other byte is the provider's: the body without the cost is the plain one
        cost_text = b',"cost":' + usd_text(entry.cost_micro_usd).encode()  # exact decimal
        assert reply.body.replace(cost_text, b"") == plain.body


async def test_usage_include_sends_the_usage_chunk_with_the_charge(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        plain = await read_all(await p.send("fake/slow:2:10", stream=True))
        stated = await read_all(
            await p.send("fake/slow:2:10", stream=True, usage={"include": True})
        )
        _, entry = await entries(p)
        events = stated.split(b"\n\n")
        usage_chunk = json.loads(events[-3].removeprefix(b"data: "))
        assert usage_chunk == {"choices": [], "usage": {**USAGE, "cost": usd(entry.cost_micro_usd)}}
        # the rest is byte for byte what a client without usage gets
        assert b"\n\n".join(events[:-3] + events[-2:]) == plain
        assert events[-2] == b"data: [DONE]"


def overrunning(settings: Settings) -> Settings:
    """A model whose provider bills more output than max_tokens allowed (the scripted
    upstream reports 2 completion tokens) and whose prompt is free: the reservation,
    max_tokens × output, is below the cost."""
    free_prompt = Pricing(base=Price(input=0, cached_input=0, output=10_000_000))
    model = fake_model(settings, "overrun", "ok", pricing=free_prompt)
    return with_models(settings, overrun=model)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_metered_key_is_told_its_capped_charge(
    tmp_path: Path, autojump_clock: object, stream: bool
) -> None:
    async with running_pipeline(tmp_path, overrunning) as p:
        reply = await p.send("overrun", stream=stream, max_tokens=1, usage={"include": True})
        body = await read_all(reply) if stream else reply.body
        [entry] = await entries(p)
        books = await p.store.books(await p.key_id(p.secret))
        assert entry.overrun_micro_usd == 10  # 2 tokens cost 20, 1 was reserved: 10
        assert entry.cost_micro_usd == books.spent_micro_usd == 10
        usage_json = body if not stream else body.split(b"\n\n")[-3].removeprefix(b"data: ")
        assert json.loads(usage_json)["usage"]["cost"] == usd(10)


async def test_accounting_off_states_a_zero_cost(tmp_path: Path, autojump_clock: object) -> None:
    def off(settings: Settings) -> Settings:
        return attrs.evolve(settings, accounting=False)

    async with running_pipeline(tmp_path, off) as p:
        reply = await p.send("fake/ok", usage={"include": True})
        assert json.loads(reply.body)["usage"]["cost"] == 0


async def test_an_error_says_nothing_of_cost(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path) as p:
        with pytest.raises(ApiError):
            await p.send("fake/status:400", usage={"include": True})


@pytest.mark.parametrize("stream", [False, True])
async def test_the_receipt_covers_the_bytes_with_the_cost(
    tmp_path: Path, autojump_clock: object, stream: bool
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("fake/slow:2:10", stream=stream, usage={"include": True})
        handed = await read_all(reply) if stream else reply.body
        assert b'"cost":' in handed
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["response_sha256"] == hashlib.sha256(handed).hexdigest()
        [entry] = await entries(p)
        assert receipt["cost_micro_usd"] == entry.cost_micro_usd
