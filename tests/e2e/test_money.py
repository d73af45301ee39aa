"""Money against a real gateway, a real fake upstream and the real openai SDK (issue 10,
findings 1–3): the reservation bounds every request, a provider's overrun is shown and
never hidden, and an unmetered key stays unmetered until an admin says otherwise."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import openai
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd, usd_text
from saferouter.catalog import Price

from ..servers import FAKE_PRICE, FakeUpstream, Gateway

FAKE2_PRICE = Price(input=2_500_000, cached_input=250_000, output=20_000_000)
HI = [{"role": "user", "content": "hi"}]


async def chat(gateway: Gateway, key: str, **body: Any) -> Any:
    """One completion through the openai SDK; the SDK's error when the gateway refuses."""

    def call() -> Any:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as sdk:
            return sdk.chat.completions.with_raw_response.create(**body)

    return await trio.to_thread.run_sync(call)


async def get(gateway: Gateway, key: str, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json() if path != "/metrics" else response.text


async def post(gateway: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        return await client.post(path, json=body)


async def served_activity(gateway: Gateway, key: str) -> dict[str, Any]:
    """The served attempt of the key's last request (settled before the response)."""
    entries = (await get(gateway, key, "/v1/activity", limit=1))["data"]
    assert entries and entries[0]["attempt"] >= 1, entries
    return entries[0]  # type: ignore[no-any-return]


async def assert_refused_for_want_of_credit(gateway: Gateway, key: str, **body: Any) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(gateway, key, **body)
    assert caught.value.status_code == 402
    assert caught.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    credits = await get(gateway, key, "/v1/credits")
    assert credits["spent_micro_usd"] == 0 == credits["reserved_micro_usd"]


async def assert_paid_in_full(gateway: Gateway, key: str, funded: int, expected: int) -> None:
    """The key paid exactly what the provider billed, nothing was lost, books sound."""
    credits = await get(gateway, key, "/v1/credits")
    activity = await served_activity(gateway, key)
    assert activity["cost_micro_usd"] == expected and activity["overrun_micro_usd"] == 0
    assert credits["spent_micro_usd"] == expected <= funded
    assert credits["balance_micro_usd"] == funded - expected
    assert credits["reserved_micro_usd"] == 0
    assert await gateway.store.overrun_micro_usd() == 0
    assert await gateway.store.check_books() == []


async def test_n_choices_are_all_reserved(gateway: Gateway, upstream: FakeUpstream) -> None:
    # the fake bills like a provider: 100 choices × 8000 tokens = 800 000 output tokens
    request = {"model": "fake/delay:0", "n": 100, "max_tokens": 8000, "messages": HI}
    poor = await gateway.create_key(credits_micro_usd=1_000_000)  # $1 < the $8 worst case
    await assert_refused_for_want_of_credit(gateway, poor, **request)
    assert upstream.requests == []
    rich = await gateway.create_key(credits_micro_usd=10_000_000)
    reply = await chat(gateway, rich, **request)
    assert reply.status_code == 200
    expected = cost_micro_usd(Usage(prompt_tokens=3, output_tokens=800_000), FAKE_PRICE)
    await assert_paid_in_full(gateway, rich, 10_000_000, expected)


async def open_fake_circuit(gateway: Gateway) -> None:
    """Z.AI's no-balance answer opens the provider's circuit at once (for minutes)."""
    reply = await chat(
        gateway,
        gateway.admin_key,
        model="fake/zai1113",
        extra_body={"models": ["fake2/delay:0"]},
        messages=HI,
    )
    assert reply.headers["X-SafeRouter-Model"] == "fake2/delay:0"
    metrics = await get(gateway, gateway.admin_key, "/metrics")
    assert 'saferouter_circuit_state{key="fake"} 2\n' in metrics


@pytest.mark.parametrize(
    ("skipped", "funds_the_skipped"),
    [
        # DeepSeek and Z.AI have no key in the test gateway
        (["deepseek-flash", "deepseek-chat", "glm-4.5-air"], 10_000),
        (["fake/a", "fake/b", "fake/c"], 15_000),  # behind an open circuit
    ],
    ids=["unconfigured", "open-circuit"],
)
async def test_a_fallback_past_skipped_candidates_is_priced(
    gateway: Gateway, upstream: FakeUpstream, skipped: list[str], funds_the_skipped: int
) -> None:
    # The race skips these without spending an attempt (max_attempts is 3) and lands on
    # the dearest candidate, fourth in the chain.
    if skipped[0].startswith("fake/"):
        await open_fake_circuit(gateway)
    served_before = len(upstream.requests)
    request = {
        "model": skipped[0],
        "extra_body": {"models": [*skipped[1:], "fake2/delay:0"]},
        "max_tokens": 1000,
        "messages": HI,
    }
    assert gateway.settings.max_attempts == 3
    poor = await gateway.create_key(credits_micro_usd=funds_the_skipped)
    await assert_refused_for_want_of_credit(gateway, poor, **request)
    assert len(upstream.requests) == served_before
    rich = await gateway.create_key(credits_micro_usd=1_000_000)
    reply = await chat(gateway, rich, **request)
    assert reply.headers["X-SafeRouter-Model"] == "fake2/delay:0"
    expected = cost_micro_usd(Usage(prompt_tokens=3, output_tokens=1000), FAKE2_PRICE)
    await assert_paid_in_full(gateway, rich, 1_000_000, expected)


async def test_both_token_limits_reserve_the_larger(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # the fake honours the larger limit, as a provider may
    request = {
        "model": "fake/delay:0",
        "max_tokens": 10,
        "max_completion_tokens": 5000,
        "messages": HI,
    }
    poor = await gateway.create_key(credits_micro_usd=10_000)  # covers 10 tokens, not 5000
    await assert_refused_for_want_of_credit(gateway, poor, **request)
    rich = await gateway.create_key(credits_micro_usd=1_000_000)
    assert (await chat(gateway, rich, **request)).status_code == 200
    expected = cost_micro_usd(Usage(prompt_tokens=3, output_tokens=5000), FAKE_PRICE)
    await assert_paid_in_full(gateway, rich, 1_000_000, expected)


async def test_an_overrun_is_charged_at_the_reservation_and_shown_everywhere(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    # the provider reports 5000 completion tokens where the request allowed 10
    reply = await chat(gateway, key, model="fake/usage:5000", max_tokens=10, messages=HI)
    assert reply.status_code == 200
    billed = cost_micro_usd(Usage(prompt_tokens=3, output_tokens=5000), FAKE_PRICE)
    request_id = reply.headers["X-SafeRouter-Request-Id"]
    db = sqlite3.connect(gateway.settings.data_dir / "saferouter.db")
    try:
        rows = dict(
            db.execute(
                "SELECT kind, amount_micro_usd FROM ledger WHERE request_id = ?", (request_id,)
            ).fetchall()
        )
    finally:
        db.close()
    reserved = -rows["reserve"]
    overrun = billed - reserved
    assert 0 < reserved < billed
    assert rows == {
        "reserve": -reserved,
        "release": reserved,
        "charge": -reserved,
        "overrun": -overrun,
    }
    activity = await served_activity(gateway, key)
    assert (activity["cost_micro_usd"], activity["overrun_micro_usd"]) == (reserved, overrun)
    assert activity["overrun_usd"] == usd_text(overrun)
    assert activity["completion_tokens"] == 5000  # the usage as reported, not trimmed
    credits = await get(gateway, key, "/v1/credits")
    assert credits["spent_micro_usd"] == reserved
    assert credits["balance_micro_usd"] == 1_000_000 - reserved
    assert "gateway_overrun_usd" not in credits  # the operator's business
    admin = await get(gateway, gateway.admin_key, "/v1/credits")
    assert admin["gateway_overrun_micro_usd"] == overrun
    assert admin["gateway_overrun_usd"] == usd_text(overrun)
    metrics = await get(gateway, gateway.admin_key, "/metrics")
    assert f"saferouter_overrun_micro_usd_total {overrun}\n" in metrics
    assert await gateway.store.check_books() == []


async def test_an_unmetered_key_has_no_balance_and_is_metered_only_on_request(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key()  # unmetered
    reply = await chat(gateway, key, model="fake/delay:0", max_tokens=100, messages=HI)
    assert reply.status_code == 200
    cost = cost_micro_usd(Usage(prompt_tokens=3, output_tokens=100), FAKE_PRICE)
    credits = await get(gateway, key, "/v1/credits")
    assert credits["metered"] is False
    assert (credits["balance_usd"], credits["balance_micro_usd"]) == (None, None)
    assert (credits["spent_micro_usd"], credits["spent_usd"]) == (cost, usd_text(cost))
    key_id = credits["key_id"]
    listed = {k["id"]: k for k in (await get(gateway, gateway.admin_key, "/v1/keys"))["data"]}
    assert listed[key_id]["balance_usd"] is None and listed[key_id]["metered"] is False

    refused = await post(
        gateway, gateway.admin_key, "/v1/credits/topup", {"key_id": key_id, "amount_usd": "2"}
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "key_not_metered" and "make_metered" in error["message"]
    assert (await get(gateway, key, "/v1/credits"))["metered"] is False  # untouched

    made = await post(
        gateway,
        gateway.admin_key,
        "/v1/credits/topup",
        {"key_id": key_id, "amount_usd": "2", "make_metered": True},
    )
    assert made.status_code == 200, made.text
    assert made.json()["metered"] is True
    assert made.json()["balance_micro_usd"] == 2_000_000  # what it spent unmetered is not owed
    await chat(gateway, key, model="fake/delay:0", max_tokens=100, messages=HI)
    credits = await get(gateway, key, "/v1/credits")
    assert credits["balance_micro_usd"] == 2_000_000 - cost
    assert credits["spent_micro_usd"] == 2 * cost
    assert await gateway.store.check_books() == []


async def test_a_metered_key_is_refused_input_whose_cost_has_no_bound(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    metered = await gateway.create_key(credits_micro_usd=10_000_000)
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway, metered, model="fake/delay:0", max_tokens=10, messages=messages)
    error = caught.value.body
    assert error["code"] == "unsupported_content" and error["param"] == "messages"  # type: ignore[index]
    assert "messages[0].content[1] (image_url)" in error["message"]  # type: ignore[index]
    assert upstream.requests == []
    assert (await get(gateway, metered, "/v1/credits"))["reserved_micro_usd"] == 0
    unmetered = await gateway.create_key()  # its spend is recorded, not bounded
    reply = await chat(gateway, unmetered, model="fake/delay:0", max_tokens=10, messages=messages)
    assert reply.status_code == 200
