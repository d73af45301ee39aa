"""The previous_response_id pin: the follow-up's attempts are cut to the provider and the
account that served the earlier response; an id this key's requests did not produce is
404 whoever produced it; an error from the pinned provider says why nothing else was
tried."""

from __future__ import annotations

import attrs
import pytest

from saferouter.accounting import reservation_micro_usd
from saferouter.byok.keyring import OwnKey
from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.config import endpoints_from_env
from saferouter.errors import InvalidRequest, NotFound, UpstreamUnavailable
from saferouter.gateway.dialects.responses import RESPONSES
from saferouter.gateway.previous_response import Pin, pin_of
from saferouter.gateway.routing import candidates, plan_attempts
from saferouter.storage import ActivityEntry

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
ENDPOINTS = endpoints_from_env(CATALOG, {"DEEPSEEK_API_KEY": "sk-op", "ZAI_API_KEY": "sk-op2"})
# deepseek-flash, then deepseek-v4-pro, glm-4.7, glm-5.3
CHAIN = candidates(CATALOG, CATALOG.resolve("deepseek-flash"), None)


def served(provider: str | None, *, byok: bool = False, estimated: bool = False) -> ActivityEntry:
    return ActivityEntry(
        request_id="req_1",
        attempt=1,
        created_at=0.0,
        key_id="k1",
        requested_model="deepseek-flash",
        served_model="deepseek-flash",
        provider=provider,
        original_model=None,
        status=200,
        outcome="ok",
        prompt_tokens=440,
        cached_tokens=384,
        completion_tokens=14,
        byok=byok,
        estimated=estimated,
    )


def own(provider: str, *, fallback: bool) -> OwnKey:
    endpoint = attrs.evolve(ENDPOINTS[provider], api_key="sk-client")
    return OwnKey(provider=provider, fingerprint="f" * 12, fallback=fallback, endpoint=endpoint)


def test_an_unknown_id_is_404_and_names_nothing_else() -> None:
    with pytest.raises(NotFound) as caught:
        pin_of(None, "resp_abc", "DeepSeek")
    error = caught.value
    assert (error.status, error.code, error.param) == (
        404,
        "previous_response_not_found",
        "previous_response_id",
    )
    assert error.message == "Previous response with id 'resp_abc' not found."


def test_the_chain_is_cut_to_the_provider_that_served() -> None:
    pin = pin_of(served("deepseek"), "resp_abc", "DeepSeek")
    plans = pin.plans(plan_attempts(CHAIN, ENDPOINTS, {}))
    assert [p.model.id for p in plans] == ["deepseek-flash", "deepseek-v4-pro"]
    pin = pin_of(served("zai"), "resp_abc", "Z.AI")
    assert [p.model.id for p in pin.plans(plan_attempts(CHAIN, ENDPOINTS, {}))] == [
        "glm-4.7",
        "glm-5.3",
    ]


def test_none_left_at_that_provider_is_a_400_saying_where_the_context_lives() -> None:
    pin = pin_of(served("demo"), "resp_abc", "SafeRouter demo")
    with pytest.raises(InvalidRequest) as caught:
        pin.plans(plan_attempts(CHAIN, ENDPOINTS, {}))
    error = caught.value
    assert error.code == "previous_response_elsewhere" and error.param == "previous_response_id"
    assert "served by SafeRouter demo with the gateway's provider key" in error.message
    assert "no other provider has it" in error.message
    assert "deepseek-flash, deepseek-v4-pro, glm-4.7, glm-5.3" in error.message


def test_the_account_that_served_is_the_one_pinned() -> None:
    """A response served with the client's own DeepSeek key lives in the client's
    DeepSeek account: the gateway's key cannot see it, and the other way round."""
    own_keys = {"deepseek": own("deepseek", fallback=True)}
    plans = plan_attempts(CHAIN, ENDPOINTS, own_keys)  # own, stand-in, own, stand-in, zai…
    by_client = pin_of(served("deepseek", byok=True), "r", "DeepSeek").plans(plans)
    assert [(p.model.id, p.own_key is not None) for p in by_client] == [
        ("deepseek-flash", True),
        ("deepseek-v4-pro", True),
    ]
    by_gateway = pin_of(served("deepseek"), "r", "DeepSeek").plans(plans)
    # the stand-ins are the only account that can answer: they go at once
    assert [(p.model.id, p.own_key, p.stand_in) for p in by_gateway] == [
        ("deepseek-flash", None, False),
        ("deepseek-v4-pro", None, False),
    ]
    no_fallback = plan_attempts(CHAIN, ENDPOINTS, {"deepseek": own("deepseek", fallback=False)})
    with pytest.raises(InvalidRequest, match="with the gateway's provider key"):
        pin_of(served("deepseek"), "r", "DeepSeek").plans(no_fallback)


def test_an_error_of_the_pinned_provider_says_why_nothing_else_was_tried() -> None:
    pin = Pin(
        response_id="resp_9",
        provider="deepseek",
        provider_name="DeepSeek",
        byok=False,
        context_tokens=0,
        estimated=False,
    )
    error = pin.explain(UpstreamUnavailable("No provider can serve this request now: x."))
    body = error.body().decode()
    assert body.count("No provider can serve") == 1
    assert "Response 'resp_9' (previous_response_id) was served by DeepSeek" in body
    assert "The request was not sent elsewhere." in body


def test_the_earlier_turns_are_reserved_for() -> None:
    """The follow-up's prompt holds the earlier response's prompt and output: the
    reservation counts them beside the body's bytes."""
    request = RESPONSES.parse(b'{"model":"deepseek-flash","input":"and?"}', [])
    pinned = pin_of(served("deepseek"), "r", "DeepSeek").applied(request)
    assert pinned.context_tokens == 440 + 14 and pinned.non_text == ()
    model, body = CATALOG.resolve("deepseek-flash"), b"x" * 100
    price = model.pricing.base
    plain = reservation_micro_usd(model, body, 10, price=price)
    follow_up = reservation_micro_usd(model, body, 10, price=price, context_tokens=454)
    assert follow_up - plain >= 454 * price.dearest_input // 1_000_000


def test_an_earlier_response_billed_on_an_estimate_bounds_nothing() -> None:
    request = RESPONSES.parse(b'{"model":"deepseek-flash","input":"and?"}', [])
    pinned = pin_of(served("deepseek", estimated=True), "r", "DeepSeek").applied(request)
    assert pinned.context_tokens == 0
    [unbounded] = pinned.non_text
    assert unbounded.param == "previous_response_id"
    assert unbounded.where == "previous_response_id 'r' (its usage is unknown)"
