"""Tokens written to a provider's cache (issue 15): read from usage, billed at the
catalog's `cache_write` price, and bounded by the reservation even when that price is
above the input price."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from saferouter.accounting import Usage, cost_micro_usd, normalize_usage, reservation_micro_usd
from saferouter.catalog import DEFAULT_CATALOG_PATH, Price, load_catalog

MODEL = attrs.evolve(load_catalog(DEFAULT_CATALOG_PATH).models["deepseek-flash"], max_output=1000)


def test_responses_usage_says_what_was_written_to_the_cache() -> None:
    raw = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 50},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
    }
    assert normalize_usage(raw) == Usage(
        prompt_tokens=100,
        cached_tokens=30,
        output_tokens=7,
        reasoning_tokens=2,
        cache_write_tokens=50,
    )


def test_a_cache_write_count_past_the_prompt_is_cut_to_what_is_left_of_it() -> None:
    raw = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 9},
    }
    assert normalize_usage(raw).cache_write_tokens == 6  # never billed twice, nor negative


def test_each_part_of_the_prompt_is_billed_at_its_own_price() -> None:
    usage = Usage(prompt_tokens=1000, cached_tokens=300, cache_write_tokens=200, output_tokens=10)
    price = Price(input=1_000_000, cached_input=100_000, output=2_000_000, cache_write=1_250_000)
    # 500 uncached · 1 + 300 cached · 0.1 + 200 written · 1.25 + 10 out · 2 (micro-USD)
    assert cost_micro_usd(usage, price) == 500 + 30 + 250 + 20


def test_without_a_cache_write_price_writes_cost_the_input_price() -> None:
    price = Price(input=1_000_000, cached_input=100_000, output=0)
    written = Usage(prompt_tokens=10, cache_write_tokens=10)
    assert cost_micro_usd(written, price) == cost_micro_usd(Usage(prompt_tokens=10), price)


PRICE = st.integers(0, 5_000_000)


@given(
    body_bytes=st.integers(1, 5_000),
    max_tokens=st.integers(1, 2_000) | st.none(),
    choices=st.integers(1, 4),
    prices=st.tuples(PRICE, PRICE, PRICE, PRICE),
    split=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    used=st.floats(0, 1),
)
def test_the_reservation_covers_any_bill_a_provider_may_send(
    body_bytes: int,
    max_tokens: int | None,
    choices: int,
    prices: tuple[int, int, int, int],
    split: tuple[float, float],
    used: float,
) -> None:
    """Whatever share of the prompt a provider reads from or writes to its cache — at a
    cache-write price above the input price too — the bill stays within the worst case
    reserved (one token per byte of the body, each choice using the whole output limit)."""
    input_price, cached_price, output_price, write_price = prices
    price = Price(input_price, cached_price, output_price, write_price)
    prompt = body_bytes
    cached = int(prompt * split[0])
    written = int((prompt - cached) * split[1])
    limit = MODEL.max_output if max_tokens is None else min(max_tokens, MODEL.max_output)
    usage = Usage(
        prompt_tokens=prompt,
        cached_tokens=cached,
        cache_write_tokens=written,
        output_tokens=int(limit * choices * used),
    )
    body = b"x" * body_bytes
    reserved = reservation_micro_usd(MODEL, body, max_tokens, price=price, choices=choices)
    assert cost_micro_usd(usage, price) <= reserved


def test_a_prompt_written_whole_to_a_dear_cache_is_reserved_at_that_price() -> None:
    price = Price(input=1_000_000, cached_input=100_000, output=0, cache_write=1_250_000)
    body = b"x" * 1000
    reserved = reservation_micro_usd(MODEL, body, 1, price=price)
    assert reserved == cost_micro_usd(Usage(prompt_tokens=1000, cache_write_tokens=1000), price)
