"""Usage and cost against every recording: the billed usage is `final_usage` exactly."""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest

from saferouter.accounting import (
    MAX_REPORTED_TOKENS,
    Usage,
    cost_micro_usd,
    normalize_usage,
    reservation_micro_usd,
    split_charge,
)
from saferouter.catalog import DEFAULT_CATALOG_PATH, Price, load_catalog
from saferouter.gateway.dialects.chat_watch import ChatWatch, chat_body_facts
from saferouter.sse import SSEDecoder, SSEEvent

from ..recordings import (
    RECORDINGS,
    entry,
    jsonl_paths,
    nonstream_paths,
    recording_params,
    sse_paths,
    stream_bytes,
)

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
STREAMS = sse_paths() + jsonl_paths()


def tap(data: bytes) -> tuple[ChatWatch, list[bool]]:
    usage = ChatWatch()
    decoder = SSEDecoder()
    decoder.feed(data)
    events = list(decoder.events())
    tail = decoder.close()
    if tail is not None:
        events.append(tail)
    return usage, [usage.observe(e) for e in events]


@pytest.mark.parametrize("relative", recording_params(STREAMS))
def test_stream_usage_is_the_last_non_null_usage(testdata: object, relative: str) -> None:
    usage, usage_only = tap(stream_bytes(relative))
    analysis = entry(relative)["analysis"]
    assert usage.raw_usage == analysis["final_usage"]
    empty_usage_chunks = [u for u in analysis["usage_chunks"] if u["choices"] == "empty"]
    assert sum(usage_only) == len(empty_usage_chunks)
    assert usage.failed == bool(analysis["in_stream_errors"])
    assert usage.done == analysis.get("done", True)  # rebuilt .jsonl streams end in [DONE]


@pytest.mark.parametrize("relative", recording_params(STREAMS + nonstream_paths()))
def test_billing_equals_final_usage_times_price(testdata: object, relative: str) -> None:
    """Priced at DeepSeek V4 Pro's peak rates (every price distinct), to the micro-USD."""
    assert RECORDINGS is not None
    price = Price(input=1_320_000, cached_input=44_000, output=3_960_000)
    if relative.startswith("nonstream/"):
        body = (RECORDINGS / relative).read_bytes()
        raw = json.loads(body)["usage"]
        billed = chat_body_facts(body).usage
    else:
        raw = entry(relative)["analysis"]["final_usage"]
        billed = tap(stream_bytes(relative))[0].usage
    if raw is None:
        assert billed is None
        return
    assert billed is not None
    prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
    completion = raw.get("completion_tokens", raw.get("output_tokens"))
    details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    cached = (
        details.get(
            "cached_tokens", raw.get("prompt_cache_hit_tokens", raw.get("cached_tokens", 0))
        )
        or 0
    )
    reasoning = (
        (raw.get("completion_tokens_details") or raw.get("output_tokens_details") or {}).get(
            "reasoning_tokens"
        )
        or raw.get("reasoning_tokens")
        or 0
    )
    output = completion
    if raw.get("total_tokens") == prompt + completion + reasoning and reasoning:
        output += reasoning  # xAI counts reasoning beside completion
    assert billed == Usage(
        prompt_tokens=prompt, cached_tokens=cached, output_tokens=output, reasoning_tokens=reasoning
    )
    exact = (prompt - cached) * 1_320_000 + cached * 44_000 + output * 3_960_000
    assert cost_micro_usd(billed, price) == -(-exact // 1_000_000)


def test_deepseek_counts_from_the_provider_notes() -> None:
    raw = {
        "prompt_tokens": 563,
        "completion_tokens": 212,
        "total_tokens": 775,
        "prompt_tokens_details": {"cached_tokens": 512},
        "completion_tokens_details": {"reasoning_tokens": 198},
        "prompt_cache_hit_tokens": 512,
        "prompt_cache_miss_tokens": 51,
    }
    usage = normalize_usage(raw)
    assert usage == Usage(
        prompt_tokens=563, cached_tokens=512, output_tokens=212, reasoning_tokens=198
    )
    flash = CATALOG.models["deepseek-flash"]
    off_peak = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
    # 51 × 0.15 + 512 × 0.003 + 212 × 0.60 micro-USD = 7.65 + 1.536 + 127.2 = 136.386 → 137
    assert cost_micro_usd(usage, flash.pricing.price_at(off_peak)) == 137


def test_reservation_is_a_worst_case() -> None:
    flash = CATALOG.models["deepseek-flash"]
    when = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)  # peak
    body = b'{"model":"deepseek-flash","messages":[{"role":"user","content":"hi"}]}'
    assert reservation_micro_usd(flash, body, 100, price=flash.pricing.price_at(when)) == -(
        -(len(body) * 300_000 + 100 * 1_200_000) // 1_000_000
    )
    no_limit = reservation_micro_usd(flash, body, None, price=flash.pricing.price_at(when))
    assert no_limit == -(-(len(body) * 300_000 + 384_000 * 1_200_000) // 1_000_000)
    assert reservation_micro_usd(flash, body, 10**9, price=flash.pricing.price_at(when)) == no_limit


def test_reservation_covers_every_choice() -> None:
    flash = CATALOG.models["deepseek-flash"]
    when = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)  # off-peak: 0.15 in, 0.60 out
    body = b'{"model":"deepseek-flash","n":100,"max_tokens":8000,"messages":[]}'
    price = flash.pricing.price_at(when)
    # the prompt is billed once; each of the 100 choices may use all 8000 tokens
    assert reservation_micro_usd(flash, body, 8000, price=price, choices=100) == -(
        -(len(body) * 150_000 + 100 * 8000 * 600_000) // 1_000_000
    )
    one = reservation_micro_usd(flash, body, 8000, price=price)
    assert reservation_micro_usd(flash, body, 8000, price=price, choices=100) > 99 * one


@pytest.mark.parametrize(
    ("cost", "cap", "expected"),
    [
        (250, 600, (250, 0)),  # within the reservation
        (600, 600, (600, 0)),
        (500, 80, (80, 420)),  # the provider billed beyond it: the rest is an overrun
        (500, 0, (0, 500)),
        (500, None, (500, 0)),  # unmetered: no cap, no overrun
        (0, 80, (0, 0)),
    ],
)
def test_split_charge_never_charges_past_the_cap_and_loses_nothing(
    cost: int, cap: int | None, expected: tuple[int, int]
) -> None:
    charge, overrun = split_charge(cost, cap)
    assert (charge, overrun) == expected and charge + overrun == cost


def data(text: str) -> SSEEvent:
    return SSEEvent(raw=b"data: " + text.encode() + b"\n\n", data=text)


def test_usage_only_chunk_detection() -> None:
    usage = ChatWatch()
    assert usage.observe(data('{"choices": [], "usage": {"prompt_tokens": 1}}')) is True
    assert usage.observe(data('{"choices": [], "usage": null}')) is False  # moderation chunk
    assert usage.observe(data('{"choices": [], "prompt_filter_results": []}')) is False  # Azure
    assert (
        usage.observe(data('{"choices": [{"delta": {"content": "hé"}}], "usage": null}')) is False
    )
    assert usage.text_bytes == 3
    assert usage.raw_usage == {"prompt_tokens": 1}


def test_a_reported_count_is_kept_between_0_and_the_bound() -> None:
    """JSON has no integer bound: a provider's 10**30 must not overflow the cost or the
    store's 64-bit columns (tests/e2e/test_absurd_usage.py has the whole request)."""
    usage = Usage(prompt_tokens=10**30, cached_tokens=10**30, output_tokens=2**63)
    assert (
        usage.prompt_tokens == usage.cached_tokens == usage.output_tokens == (MAX_REPORTED_TOKENS)
    )
    assert Usage(output_tokens=-5).output_tokens == 0
    dearest = Price(input=10**10, cached_input=10**10, output=10**10, cache_write=10**10)
    assert 0 < cost_micro_usd(attrs.evolve(usage, cache_write_tokens=10**30), dearest) < 2**63


def test_parts_reported_beyond_the_prompt_never_make_a_negative_cost() -> None:
    usage = Usage(prompt_tokens=10, cached_tokens=10, cache_write_tokens=10)
    price = Price(input=5_000_000, cached_input=0, output=0, cache_write=0)
    assert cost_micro_usd(usage, price) == 0
