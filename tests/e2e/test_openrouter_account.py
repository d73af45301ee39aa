"""OpenRouter's account endpoints on a live gateway, read through the real ``openrouter``
SDK (its models validate every field OpenRouter's API reference requires):
``GET /api/v1/key``, ``/api/v1/credits`` and ``/api/v1/generation?id=`` — the calling
key's own numbers, agreeing with SafeRouter's own endpoints; a generation found by its
request id or its response id, another key's never."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from openrouter import OpenRouter, errors

from saferouter.keys import hash_key

from ..servers import Gateway
from .test_errors import assert_openai_error

# the SDK's model of the key's legacy rate_limit field warns that it is deprecated, as it
# does parsing OpenRouter's own answer (which still sends the field)
pytestmark = pytest.mark.filterwarnings("ignore:.*DEPRECATED.*:DeprecationWarning")
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "count me"}]}
_made: list[OpenRouter] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _made:
        _made.pop().__exit__(None, None, None)


def sdk(gateway: Gateway, key: str) -> OpenRouter:
    made = OpenRouter(api_key=key, server_url=gateway.url + "/api/v1").__enter__()
    _made.append(made)
    return made


async def in_thread(call: Any) -> Any:
    """The SDK blocks; the servers share this trio loop."""
    return await trio.to_thread.run_sync(call)


async def chat(gateway: Gateway, key: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/api/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}", **headers},
        )
    assert response.status_code == 200, response.text
    return response


async def own(gateway: Gateway, key: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_metered_keys_limit_usage_and_credits(gateway: Gateway) -> None:
    key = await gateway.create_key("metered", credits_micro_usd=2_000_000, rpm_limit=30)
    await chat(gateway, key)
    books = await own(gateway, key, "/v1/credits")
    spent = books["spent_micro_usd"] / 1e6
    assert spent > 0
    current = (await in_thread(lambda: sdk(gateway, key).api_keys.get_current_key_metadata())).data
    assert current.label == "metered"
    assert current.usage == pytest.approx(spent)
    assert current.usage_daily == current.usage_weekly == current.usage_monthly == current.usage
    assert current.limit == pytest.approx(2.0)
    assert current.limit_remaining == pytest.approx(books["balance_micro_usd"] / 1e6)
    assert current.is_free_tier is False
    assert (current.rate_limit.requests, current.rate_limit.interval) == (30, "1m")
    credits = (await in_thread(lambda: sdk(gateway, key).credits.get_credits())).data
    assert (credits.total_credits, credits.total_usage) == (pytest.approx(2.0), current.usage)
    # the older name of the key endpoint answers the same
    again = await own(gateway, key, "/api/v1/auth/key")
    assert again["data"]["usage"] == current.usage


async def test_an_unmetered_key_has_no_limit(gateway: Gateway) -> None:
    key = await gateway.create_key("unmetered")
    current = (await in_thread(lambda: sdk(gateway, key).api_keys.get_current_key_metadata())).data
    assert (current.limit, current.limit_remaining, current.usage) == (None, None, 0.0)
    assert current.rate_limit.requests == -1
    credits = (await in_thread(lambda: sdk(gateway, key).credits.get_credits())).data
    assert (credits.total_credits, credits.total_usage) == (0.0, 0.0)


async def test_a_generation_by_its_request_id(gateway: Gateway) -> None:
    key = await gateway.create_key("gen", credits_micro_usd=2_000_000)
    response = await chat(gateway, key, **{"HTTP-Referer": "https://my.app", "X-Title": "My App"})
    request_id = response.headers["x-saferouter-request-id"]
    found = (
        await in_thread(lambda: sdk(gateway, key).generations.get_generation(id=request_id))
    ).data
    record = await gateway.store.key_by_hash(hash_key(key))
    assert record is not None
    (entry,) = await gateway.store.find_request(record.id, request_id)
    usage = response.json()["usage"]
    assert found.request_id == request_id
    assert (found.model, found.provider_name) == (
        "demo",
        gateway.settings.catalog.providers["demo"].name,
    )
    assert (found.tokens_prompt, found.tokens_completion) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert found.total_cost == found.usage == pytest.approx(entry.cost_micro_usd / 1e6)
    assert found.total_cost > 0
    assert found.latency == entry.latency_ms and found.streamed is False
    assert found.cancelled is False and found.is_byok is False
    created = dt.datetime.fromisoformat(found.created_at)
    assert created.timestamp() == pytest.approx(entry.created_at)
    assert [r.status for r in found.provider_responses or []] == [200]
    assert (found.http_referer, found.origin) == ("https://my.app", "https://my.app")
    raw = await own(gateway, key, f"/api/v1/generation?id={request_id}")
    assert raw["data"]["app"] == {"title": "My App", "referer": "https://my.app"}


async def test_a_generation_by_its_response_id(gateway: Gateway) -> None:
    key = await gateway.create_key("by-response")
    response = await chat(gateway, key)
    record = await gateway.store.key_by_hash(hash_key(key))
    assert record is not None
    (entry,) = await gateway.store.find_request(
        record.id, response.headers["x-saferouter-request-id"]
    )
    assert entry.response_id == response.json()["id"]
    found = await own(gateway, key, f"/api/v1/generation?id={entry.response_id}")
    assert found["data"]["upstream_id"] == found["data"]["id"] == entry.response_id
    assert found["data"]["finish_reason"] == "stop"


async def test_another_keys_generation_is_not_found_an_admin_finds_it(gateway: Gateway) -> None:
    mine, theirs = await gateway.create_key("mine"), await gateway.create_key("theirs")
    request_id = (await chat(gateway, theirs)).headers["x-saferouter-request-id"]
    # an OpenAI-shaped error (a string code), which the SDK reads as a failure all the same
    with pytest.raises(errors.OpenRouterError) as refused:
        await in_thread(lambda: sdk(gateway, mine).generations.get_generation(id=request_id))
    assert refused.value.status_code == 404
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(
            "/api/v1/generation",
            params={"id": request_id},
            headers={"Authorization": f"Bearer {mine}"},
        )
    assert_openai_error(response, 404, "generation_not_found")
    assert request_id in response.json()["error"]["message"]  # its own words, no more
    admin = await own(gateway, gateway.admin_key, f"/api/v1/generation?id={request_id}")
    assert admin["data"]["request_id"] == request_id


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "missing_required_parameter"),
        ({"id": ""}, "missing_required_parameter"),
        ({"id": "has space"}, "invalid_value"),
        ({"id": "x" * 201}, "invalid_value"),
        ({"id": "é"}, "invalid_value"),
        ({"id": "nul\x00"}, "invalid_value"),
    ],
    ids=repr,
)
async def test_a_missing_or_bad_id_is_a_400(
    gateway: Gateway, query: dict[str, str], code: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(
            "/api/v1/generation",
            params=query,
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        )
    assert assert_openai_error(response, 400, code)["param"] == "id"


@pytest.mark.parametrize("path", ["/api/v1/key", "/api/v1/credits", "/api/v1/generation?id=x"])
async def test_every_account_endpoint_needs_a_key(gateway: Gateway, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert_openai_error(await client.get(path), 401)
        wrong = await client.get(path, headers={"Authorization": "Bearer sk-sr-wrong"})
        assert_openai_error(wrong, 401)
        assert_openai_error(await client.post(path), 405)
