"""Which APIs a provider serves and where (issue 15), and the cache-write price: the
catalog's `apis`, `anthropic_base_url(_env)`, `cache_write`, and UpstreamEndpoint.url."""

from __future__ import annotations

from typing import Any

import pytest

from saferouter.catalog import DEFAULT_CATALOG_PATH, Api, Price, load_catalog, parse_catalog
from saferouter.config import endpoints_from_env
from saferouter.errors import ConfigError

SHIPPED = load_catalog(DEFAULT_CATALOG_PATH)


def catalog(provider: dict[str, Any] | None = None, **price: object) -> dict[str, Any]:
    return {
        "providers": {"p": {"name": "P", "base_url": "https://p.example/v1", **(provider or {})}},
        "models": [
            {
                "id": "m",
                "provider": "p",
                "context_length": 10,
                "max_output": 5,
                "price": {"input": "1", "output": "2", **price},
            }
        ],
    }


def test_the_shipped_providers_serve_what_they_serve() -> None:
    deepseek, zai, demo = (SHIPPED.providers[p] for p in ("deepseek", "zai", "demo"))
    assert deepseek.apis == {Api.CHAT, Api.RESPONSES, Api.MESSAGES}
    assert deepseek.anthropic_base_url == "https://api.deepseek.com/anthropic"
    assert deepseek.anthropic_base_url_env == "DEEPSEEK_ANTHROPIC_BASE_URL"
    assert zai.apis == {Api.CHAT, Api.MESSAGES}  # no Responses API at Z.AI
    assert zai.anthropic_base_url == "https://api.z.ai/api/anthropic"
    assert zai.anthropic_base_url_env == "ZAI_ANTHROPIC_BASE_URL"
    assert demo.apis == set(Api)  # the demo speaks every API


def test_a_provider_serves_chat_unless_it_says_otherwise() -> None:
    assert parse_catalog(catalog()).providers["p"].apis == {Api.CHAT}
    listed = catalog({"apis": ["responses"]})
    assert parse_catalog(listed).providers["p"].apis == {Api.RESPONSES}


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"apis": ["chat", "embeddings"]}, "not \\['embeddings'\\]"),
        ({"apis": []}, "apis must list some of"),
        ({"apis": "chat"}, "apis"),
        ({"apis": ["messages"]}, "serves messages: it needs an anthropic_base_url"),
        ({"anthropic_base_url": "api.example/anthropic"}, "http\\(s\\) anthropic_base_url"),
    ],
)
def test_bad_apis_and_urls_are_refused(provider: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(catalog(provider))


def test_each_api_goes_under_its_base_url_and_the_environment_moves_it() -> None:
    providers = {
        "providers": {
            "p": {
                "name": "P",
                "base_url": "https://p.example/v1/",
                "apis": ["chat", "responses", "messages"],
                "anthropic_base_url": "https://p.example/anthropic/",
                "anthropic_base_url_env": "P_ANTHROPIC_BASE_URL",
            }
        }
    }
    shipped = endpoints_from_env(parse_catalog(providers), {})["p"]
    assert shipped.url(Api.CHAT) == shipped.url(Api.RESPONSES) == "https://p.example/v1"
    assert shipped.url(Api.MESSAGES) == "https://p.example/anthropic"
    moved = endpoints_from_env(
        parse_catalog(providers), {"P_ANTHROPIC_BASE_URL": "http://127.0.0.1:9/a/"}
    )["p"]
    assert moved.url(Api.MESSAGES) == "http://127.0.0.1:9/a"
    assert moved.url(Api.CHAT) == "https://p.example/v1"
    with pytest.raises(ConfigError, match="P_ANTHROPIC_BASE_URL must be an http"):
        endpoints_from_env(parse_catalog(providers), {"P_ANTHROPIC_BASE_URL": "ftp://x"})


def test_the_demo_is_reached_in_process_for_every_api() -> None:
    demo = endpoints_from_env(SHIPPED, {})["demo"]
    assert demo.url(Api.CHAT) + "/chat/completions" == "http://demo.invalid/v1/chat/completions"
    assert demo.url(Api.MESSAGES) + "/v1/messages" == "http://demo.invalid/v1/messages"


def test_the_cache_write_price_defaults_to_input_and_is_checked_like_the_others() -> None:
    base = parse_catalog(catalog()).models["m"].pricing.base
    assert base.cache_write == base.input == 1_000_000
    dearer = parse_catalog(catalog(cache_write="1.25")).models["m"].pricing.base
    assert dearer.cache_write == 1_250_000 and dearer.dearest_input == 1_250_000
    peak = catalog()
    peak["models"][0]["peak"] = {
        "input": "2",
        "output": "4",
        "cache_write": "2.5",
        "hours_utc": ["01:00-02:00"],
    }
    assert parse_catalog(peak).models["m"].pricing.peak == Price(
        2_000_000, 2_000_000, 4_000_000, 2_500_000
    )
    for bad in ("-1", "0.0000001", "abc", True):
        with pytest.raises(ConfigError):
            parse_catalog(catalog(cache_write=bad))


def test_a_fee_takes_its_share_of_the_cache_write_price_too() -> None:
    price = Price(input=100, cached_input=10, output=400, cache_write=125)
    assert price.fee(5_000) == Price(input=50, cached_input=5, output=200, cache_write=63)
