"""Catalog parsing, prices as exact integers, peak windows, routing."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from saferouter.catalog import (
    DEFAULT_CATALOG_PATH,
    Price,
    load_catalog,
    parse_catalog,
    usd_per_million_to_micro,
)
from saferouter.errors import ConfigError, ModelNotFound

SHIPPED = load_catalog(DEFAULT_CATALOG_PATH)


def minimal(**model: object) -> dict[str, object]:
    base = {
        "id": "m",
        "provider": "p",
        "context_length": 10,
        "max_output": 5,
        "price": {"input": "1", "output": "2"},
    }
    return {
        "providers": {"p": {"name": "P", "base_url": "https://p.example/v1"}},
        "models": [{**base, **model}],
    }


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0.0028", 2800),
        ("0.003625", 3625),
        ("1.40", 1_400_000),
        (0.14, 140_000),
        (2, 2_000_000),
        ("0", 0),
    ],
)
def test_prices_convert_exactly(text: object, micro: int) -> None:
    assert usd_per_million_to_micro(text) == micro


@pytest.mark.parametrize("bad", ["0.0000001", "-1", "abc", True, None, [1], "nan", "-inf"])
def test_bad_prices_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        usd_per_million_to_micro(bad)


def test_shipped_catalog_has_the_promised_models() -> None:
    ids = set(SHIPPED.models)
    assert {
        "deepseek-flash",
        "deepseek-v4-flash",
        "deepseek-v4-pro",
        "deepseek-chat",
        "deepseek-reasoner",
        "glm-4.5",
        "glm-4.5-air",
        "glm-4.5-flash",
        "glm-4.6",
        "glm-4.7",
        "glm-4.7-flash",
        "glm-5.2",
        "glm-5.3",
        "demo",
    } <= ids
    pro = SHIPPED.models["deepseek-v4-pro"]
    assert pro.pricing.base.input == 660_000 and pro.pricing.base.cached_input == 22_000
    assert pro.context_length == 1_000_000 and pro.max_output == 384_000
    assert SHIPPED.models["glm-4.6"].context_length == 202_752
    for model in SHIPPED.models.values():
        assert model.fallbacks or model.provider == "demo", model.id
        for fb in model.fallbacks:
            assert model.capabilities <= SHIPPED.models[fb].capabilities


def test_deepseek_peak_windows() -> None:
    pricing = SHIPPED.models["deepseek-flash"].pricing
    utc = dt.UTC
    thursday_peak = dt.datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    thursday_gap = dt.datetime(2026, 11, 26, 4, 0, tzinfo=utc)  # 04:00 is off-peak
    thursday_late = dt.datetime(2026, 11, 26, 9, 59, tzinfo=utc)
    saturday = dt.datetime(2026, 11, 28, 2, 30, tzinfo=utc)
    assert pricing.price_at(thursday_peak).input == 300_000
    assert pricing.price_at(thursday_gap).input == 150_000
    assert pricing.price_at(thursday_late).output == 1_200_000
    assert pricing.price_at(saturday).input == 150_000
    # a time given in Beijing is the same instant
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert pricing.price_at(dt.datetime(2026, 11, 26, 10, 30, tzinfo=beijing)).input == 300_000


def test_routing_by_id_prefix_and_provider_path() -> None:
    assert SHIPPED.resolve("glm-4.7").upstream == "glm-4.7"
    assert SHIPPED.resolve("deepseek-chat").upstream == "deepseek-v4-flash"
    unlisted = SHIPPED.resolve("glm-4.5v")
    assert unlisted.provider == "zai" and not unlisted.listed
    assert unlisted.pricing.base.output == 4_400_000
    assert SHIPPED.resolve("zai/glm-4.7") == SHIPPED.models["glm-4.7"]
    assert SHIPPED.resolve("deepseek/deepseek-next").upstream == "deepseek-next"
    with pytest.raises(ModelNotFound):
        SHIPPED.resolve("gpt-4o")
    with pytest.raises(ModelNotFound):
        SHIPPED.resolve("demo/")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"provider": "nope"}, "unknown provider"),
        ({"capabilities": ["telepathy"]}, "unknown capabilities"),
        ({"fallbacks": ["ghost"]}, "is not a model"),
        ({"fallbacks": ["m"]}, "falls back to itself"),
        ({"price": {"input": "1"}}, "output"),
        ({"surprise": 1}, "surprise"),
        ({"peak": {"input": "1", "output": "1", "hours_utc": ["10:00-09:00"]}}, "ends before"),
        ({"peak": {"input": "1", "output": "1", "hours_utc": ["25:00-26:00"]}}, "HH:MM"),
    ],
)
def test_catalog_errors_name_the_problem(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(minimal(**change))


def test_fallback_missing_a_capability_is_refused() -> None:
    data = minimal(capabilities=["tools"], fallbacks=["n"])
    data["models"].append(
        {
            "id": "n",
            "provider": "p",
            "context_length": 1,
            "max_output": 1,  # type: ignore[attr-defined]
            "price": {"input": "1", "output": "1"},
        }
    )
    with pytest.raises(ConfigError, match="lacks"):
        parse_catalog(data)


def test_provider_needs_http_base_url_and_known_kind() -> None:
    with pytest.raises(ConfigError, match="http"):
        parse_catalog({"providers": {"p": {"name": "P", "base_url": "file:///etc"}}})
    with pytest.raises(ConfigError, match="kind"):
        parse_catalog({"providers": {"p": {"name": "P", "kind": "grpc"}}})


def test_shipped_file_is_plain_toml() -> None:
    assert tomllib.loads(DEFAULT_CATALOG_PATH.read_text())["providers"]["demo"]["kind"] == "demo"


@pytest.mark.parametrize(("percent", "bp"), [("0", 0), ("2.5", 250), (5, 500), ("100", 10_000)])
def test_the_byok_fee_is_held_in_basis_points(percent: object, bp: int) -> None:
    data = {**minimal(), "settings": {"byok_fee_percent": percent}}
    assert parse_catalog(data).byok_fee_bp == bp


@pytest.mark.parametrize("bad", ["-1", "100.01", "0.001", "nan", "inf", True, "x", [1]])
def test_a_bad_byok_fee_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="byok_fee_percent"):
        parse_catalog({**minimal(), "settings": {"byok_fee_percent": bad}})


def test_the_shipped_fee_is_zero_and_unknown_settings_are_refused() -> None:
    assert SHIPPED.byok_fee_bp == 0 and parse_catalog(minimal()).byok_fee_bp == 0
    with pytest.raises(ConfigError, match="settings"):
        parse_catalog({**minimal(), "settings": {"byok_fee": "1"}})


def test_a_fee_price_is_each_part_rounded_up() -> None:
    price = Price(input=150_000, cached_input=3_001, output=7)
    assert price.fee(250) == Price(input=3_750, cached_input=76, output=1)  # 75.025 → 76
    assert price.fee(0) == Price(0, 0, 0) and price.fee(10_000) == price
