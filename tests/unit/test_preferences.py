"""OpenRouter's ``provider`` preferences over a request's candidates: every rule, the
names clients write, what leaves nothing, and every bad or unsupported shape."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import InvalidRequest, NotFound
from saferouter.gateway.preferences import ProviderPreferences, Routed, SortBy, apply
from saferouter.gateway.route_stats import RouteStats

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
OFF_PEAK = dt.datetime(2026, 3, 7, 12, tzinfo=dt.UTC)  # a Saturday: DeepSeek's base price
# glm-4.7 (zai, 0.38 + 1.74), deepseek-flash (0.30 + 1.20), glm-5.3 (zai, 1.40 + 4.40),
# deepseek-v4-pro (1.32 + 3.96)
CHAIN = [CATALOG.models[m] for m in ("glm-4.7", "deepseek-flash", "glm-5.3", "deepseek-v4-pro")]


def route(provider: dict[str, Any] | None, stats: RouteStats | None = None) -> Routed:
    prefs = ProviderPreferences.parse(provider)
    return apply(
        CHAIN, prefs, providers=CATALOG.providers, stats=stats or RouteStats(), now=OFF_PEAK
    )


def ids(routed: Routed) -> list[str]:
    return [m.id for m in routed.chain]


def measured(figures: dict[str, tuple[float, float]]) -> RouteStats:
    """Stats where each model was measured once: (time to first byte, tokens/s)."""
    stats = RouteStats()
    for model_id, (ttfb_s, tokens_per_s) in figures.items():
        stats.record(model_id, ttfb_s=ttfb_s, output_tokens=int(tokens_per_s), generation_s=1.0)
    return stats


def test_no_preferences_leave_the_chain_as_it_is() -> None:
    assert ids(route(None)) == [m.id for m in CHAIN]
    assert route({}).notes == ()


@pytest.mark.parametrize("name", ["zai", "ZAI", "z-ai", "Z.AI", "Z.AI (GLM)"])
def test_only_keeps_the_named_provider_whatever_way_it_is_written(name: str) -> None:
    routed = route({"only": [name]})
    assert ids(routed) == ["glm-4.7", "glm-5.3"]
    assert routed.notes == ("provider.only dropped deepseek-flash, deepseek-v4-pro",)


def test_ignore_drops_the_named_provider() -> None:
    assert ids(route({"ignore": ["DeepSeek"]})) == ["glm-4.7", "glm-5.3"]


def test_order_puts_listed_providers_first_and_keeps_the_rest_after() -> None:
    assert ids(route({"order": ["deepseek"]})) == [
        "deepseek-flash",
        "deepseek-v4-pro",
        "glm-4.7",
        "glm-5.3",
    ]


def test_order_follows_the_listed_order() -> None:
    assert ids(route({"order": ["deepseek", "zai"]}))[:2] == ["deepseek-flash", "deepseek-v4-pro"]
    assert ids(route({"order": ["zai", "deepseek"]}))[:2] == ["glm-4.7", "glm-5.3"]


def test_without_fallbacks_the_order_is_all_there_is() -> None:
    routed = route({"order": ["deepseek"], "allow_fallbacks": False})
    assert ids(routed) == ["deepseek-flash", "deepseek-v4-pro"]


def test_without_fallbacks_or_order_the_first_candidate_goes_alone() -> None:
    assert ids(route({"allow_fallbacks": False})) == ["glm-4.7"]
    assert ids(route({"allow_fallbacks": False, "sort": "price"})) == ["deepseek-flash"]


def test_without_fallbacks_an_order_matching_nothing_is_a_404() -> None:
    with pytest.raises(NotFound) as caught:
        route({"order": ["demo"], "allow_fallbacks": False})
    assert caught.value.param == "provider.order"
    assert caught.value.code == "no_allowed_candidate"


def test_max_price_drops_what_is_dearer_in_prompt_or_completion() -> None:
    assert ids(route({"max_price": {"prompt": 0.5}})) == ["glm-4.7", "deepseek-flash"]
    assert ids(route({"max_price": {"completion": "1.5"}})) == ["deepseek-flash"]
    # exactly the price is not dearer
    assert ids(route({"max_price": {"prompt": "0.15", "completion": 0.6}})) == ["deepseek-flash"]


def test_max_price_reads_the_price_of_now() -> None:
    peak = dt.datetime(2026, 3, 9, 2, tzinfo=dt.UTC)  # a Monday, inside DeepSeek's peak
    flash = [CATALOG.models["deepseek-flash"]]  # input 0.15 off-peak, 0.30 at peak
    prefs = ProviderPreferences.parse({"max_price": {"prompt": "0.2"}})
    kept = apply(flash, prefs, providers=CATALOG.providers, stats=RouteStats(), now=OFF_PEAK)
    assert kept.chain == tuple(flash)
    with pytest.raises(NotFound):
        apply(flash, prefs, providers=CATALOG.providers, stats=RouteStats(), now=peak)


@pytest.mark.parametrize(
    ("provider", "param"),
    [
        ({"only": ["Anthropic"]}, "provider.only"),
        ({"ignore": ["zai", "deepseek"]}, "provider.ignore"),
        ({"max_price": {"prompt": 0.01}}, "provider.max_price"),
    ],
)
def test_a_rule_leaving_nothing_is_a_404_naming_it(provider: dict[str, Any], param: str) -> None:
    with pytest.raises(NotFound) as caught:
        route(provider)
    assert caught.value.param == param
    assert caught.value.status == 404
    assert param in caught.value.message


def test_a_provider_unknown_here_is_noted_not_refused() -> None:
    routed = route({"order": ["anthropic", "deepseek"], "ignore": ["openai"]})
    assert ids(routed)[0] == "deepseek-flash"
    assert routed.notes == (
        "provider.ignore: no provider here is named openai",
        "provider.order: no provider here is named anthropic",
    )


def test_sort_by_price_orders_by_input_plus_output() -> None:
    assert ids(route({"sort": "price"})) == [
        "deepseek-flash",
        "glm-4.7",
        "deepseek-v4-pro",
        "glm-5.3",
    ]


def test_sort_orders_only_what_order_did_not_place() -> None:
    routed = route({"order": ["zai"], "sort": "price"})
    assert ids(routed) == ["glm-4.7", "glm-5.3", "deepseek-flash", "deepseek-v4-pro"]


def test_sort_by_latency_puts_measured_first_fastest_first() -> None:
    stats = measured({"glm-5.3": (0.4, 10), "deepseek-v4-pro": (0.2, 10)})
    routed = route({"sort": "latency"}, stats)
    # unmeasured after the measured, in their order
    assert ids(routed) == ["deepseek-v4-pro", "glm-5.3", "glm-4.7", "deepseek-flash"]


def test_sort_by_throughput_puts_the_most_tokens_per_second_first() -> None:
    stats = measured({"glm-4.7": (0.1, 20), "deepseek-flash": (0.9, 80), "glm-5.3": (0.1, 40)})
    routed = route({"sort": {"by": "throughput"}}, stats)
    assert ids(routed) == ["deepseek-flash", "glm-5.3", "glm-4.7", "deepseek-v4-pro"]


def test_sort_within_each_model_keeps_the_models_order() -> None:
    # OpenRouter's partition "model" sorts each model's providers: ours have one each
    assert ids(route({"sort": {"by": "price", "partition": "model"}})) == [m.id for m in CHAIN]
    assert ids(route({"sort": {"by": "price", "partition": "none"}}))[0] == "deepseek-flash"


def test_preferred_latency_moves_the_measured_slow_last() -> None:
    stats = measured({"glm-4.7": (3.0, 50), "glm-5.3": (0.5, 50)})
    routed = route({"preferred_max_latency": 1}, stats)
    assert ids(routed) == ["deepseek-flash", "glm-5.3", "deepseek-v4-pro", "glm-4.7"]
    routed = route({"preferred_min_throughput": {"p50": 60}}, stats)
    assert ids(routed) == ["deepseek-flash", "deepseek-v4-pro", "glm-4.7", "glm-5.3"]


def test_parse_reads_every_field() -> None:
    prefs = ProviderPreferences.parse(
        {
            "order": ["zai"],
            "only": ["zai", "deepseek"],
            "ignore": [],
            "allow_fallbacks": False,
            "sort": "latency",
            "max_price": {"prompt": "1", "completion": 2.5, "request": 0, "image": "0.1"},
            "data_collection": "allow",
            "zdr": False,
            "require_parameters": None,
            "quantizations": [],
            "options": {},
        }
    )
    assert prefs == ProviderPreferences(
        order=("zai",),
        only=("zai", "deepseek"),
        allow_fallbacks=False,
        sort=SortBy.LATENCY,
        max_prompt_micro_usd=Decimal(1_000_000),
        max_completion_micro_usd=Decimal(2_500_000),
    )
    assert ProviderPreferences.parse(None) is None


@pytest.mark.parametrize(
    ("provider", "param", "code"),
    [
        ("deepseek", "provider", "invalid_type"),
        ({"order": "deepseek"}, "provider.order", "invalid_type"),
        ({"only": ["zai", 3]}, "provider.only[1]", "invalid_value"),
        ({"ignore": [""]}, "provider.ignore[0]", "invalid_value"),
        ({"ignore": ["zai\x00x"]}, "provider.ignore[0]", "invalid_value"),
        ({"order": ["evil\nline"]}, "provider.order[0]", "invalid_value"),
        ({"order": ["x"] * 33}, "provider.order", "invalid_value"),
        ({"allow_fallbacks": "no"}, "provider.allow_fallbacks", "invalid_type"),
        ({"sort": "cheapest"}, "provider.sort", "invalid_value"),
        ({"sort": {"by": "price", "order": "asc"}}, "provider.sort.order", "unknown_parameter"),
        ({"sort": {"by": "price", "partition": "x"}}, "provider.sort.partition", "invalid_value"),
        ({"max_price": 1}, "provider.max_price", "invalid_type"),
        ({"max_price": {"prompt": -1}}, "provider.max_price.prompt", "invalid_value"),
        ({"max_price": {"prompt": "1e3"}}, "provider.max_price.prompt", "invalid_value"),
        ({"max_price": {"prompt": True}}, "provider.max_price.prompt", "invalid_type"),
        ({"max_price": {"tokens": 1}}, "provider.max_price.tokens", "unknown_parameter"),
        ({"preferred_max_latency": "1s"}, "provider.preferred_max_latency", "invalid_type"),
        (
            {"preferred_min_throughput": {"p50": -1}},
            "provider.preferred_min_throughput.p50",
            "invalid_value",
        ),
        ({"data_collection": "maybe"}, "provider.data_collection", "invalid_value"),
        ({"zdr": "yes"}, "provider.zdr", "invalid_type"),
        ({"quantizations": "fp8"}, "provider.quantizations", "invalid_type"),
        ({"options": []}, "provider.options", "invalid_type"),
        ({"fastest": True}, "provider.fastest", "unknown_parameter"),
    ],
)
def test_bad_shapes_are_400s_naming_the_field(provider: object, param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ProviderPreferences.parse(provider)
    assert (caught.value.param, caught.value.code) == (param, code)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("provider", "param"),
    [
        ({"data_collection": "deny"}, "provider.data_collection"),
        ({"zdr": True}, "provider.zdr"),
        ({"require_parameters": True}, "provider.require_parameters"),
        ({"quantizations": ["fp8"]}, "provider.quantizations"),
        ({"enforce_distillable_text": True}, "provider.enforce_distillable_text"),
        ({"options": {"deepseek": {"x": 1}}}, "provider.options"),
        ({"sort": "exacto"}, "provider.sort"),
        ({"preferred_max_latency": {"p90": 2}}, "provider.preferred_max_latency.p90"),
    ],
)
def test_what_cannot_be_honoured_is_refused_saying_so(provider: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ProviderPreferences.parse(provider)
    assert (caught.value.param, caught.value.code) == (param, "unsupported_value")
    assert "not supported" in caught.value.message
