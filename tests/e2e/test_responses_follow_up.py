"""``previous_response_id`` through a real gateway with the openai SDK: the follow-up is
pinned to the provider that served the earlier response, never forwarded for another
key (all keys share the operator's account at the provider), and an error of the pinned
provider says why nothing else was tried. Also what a Responses request may not do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from ..servers import FakeUpstream, Gateway
from .responses_gateway import responses_gateway, sdk


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with responses_gateway(tmp_path, upstream.url) as gw:
        yield gw


async def create(gateway: Gateway, key: str, **request: Any) -> Any:
    """``client.responses.with_raw_response.create(**request)`` in a thread."""
    client, _ = sdk(gateway, key)

    def call() -> Any:
        with client:
            return client.responses.with_raw_response.create(**request)

    return await trio.to_thread.run_sync(call)


async def test_a_follow_up_is_pinned_to_the_provider_that_served_its_predecessor(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    first = await create(gateway, key, model="resp-b", input="remember 7")
    earlier = first.parse().id
    assert first.headers["x-saferouter-provider"] == "rfake2"
    # resp-chain would go to rfake first (a 503), then rfake2: pinned, rfake is not asked
    follow_up = await create(
        gateway, key, model="resp-chain", input="which number?", previous_response_id=earlier
    )
    assert follow_up.headers["x-saferouter-provider"] == "rfake2"
    sent = upstream.requests[-1]
    assert sent["body"]["previous_response_id"] == earlier and sent["body"]["model"] == "answer-b"
    assert [r["body"]["model"] for r in upstream.requests] == ["answer-b", "answer-b"]
    # and unpinned, the same request goes to rfake first
    await create(gateway, key, model="resp-chain", input="which number?")
    assert [r["body"]["model"] for r in upstream.requests[2:]] == ["status:503", "answer-b"]


async def test_another_keys_response_id_is_not_found_and_never_forwarded(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    owner = await gateway.create_key(name="owner", credits_micro_usd=10_000_000)
    other = await gateway.create_key(name="other", credits_micro_usd=10_000_000)
    earlier = (await create(gateway, owner, model="rfake/plain", input="my secret")).parse().id
    asked = len(upstream.requests)
    for response_id in (earlier, "resp_never_served"):
        with pytest.raises(openai.NotFoundError) as caught:
            await create(
                gateway,
                other,
                model="rfake/plain",
                input="what did they say?",
                previous_response_id=response_id,
            )
        error = caught.value
        assert error.code == "previous_response_not_found"
        assert error.param == "previous_response_id"
        assert error.message.endswith(f"Previous response with id '{response_id}' not found.")
    assert len(upstream.requests) == asked  # nothing went upstream
    # the owner may follow up
    await create(gateway, owner, model="rfake/plain", input="and?", previous_response_id=earlier)
    assert upstream.requests[-1]["body"]["previous_response_id"] == earlier


async def test_the_pinned_provider_failing_is_said_to_be_where_the_context_lives(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    earlier = (await create(gateway, key, model="rfake/plain", input="hi")).parse().id
    with pytest.raises(openai.InternalServerError) as caught:
        await create(
            gateway, key, model="rfake/status:503", input="and?", previous_response_id=earlier
        )
    message = caught.value.message
    assert (
        f"Response '{earlier}' (previous_response_id) was served by Responses upstream" in message
    )
    assert "no other provider has it" in message and "not sent elsewhere" in message
    # a model at another provider cannot see it: 400 before anything is sent
    asked = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        await create(gateway, key, model="resp-b", input="and?", previous_response_id=earlier)
    assert refused.value.code == "previous_response_elsewhere"
    assert len(upstream.requests) == asked


async def test_a_metered_follow_up_reserves_for_the_earlier_turns(
    testdata: object, gateway: Gateway, upstream: FakeUpstream
) -> None:
    """The earlier response's tokens come back as the follow-up's prompt: a key whose
    credits cover the follow-up's body but not them is refused (402) before anything is
    sent; the same request without ``previous_response_id`` passes."""
    key = await gateway.create_key(credits_micro_usd=3_000)
    body = "responses/pydantic-ai__openrouter_responses_prompt_cache__i1.json"
    first = await create(gateway, key, model=f"rfake/file:{body}", input="hi", max_output_tokens=10)
    earlier = first.parse().id  # 4020 prompt tokens (4012 cached), 5 output: 562 µUSD
    asked = len(upstream.requests)
    # 4025 earlier tokens at the dearest input price (1.5 USD/M) alone reserve 6038 µUSD
    with pytest.raises(openai.APIStatusError) as caught:
        await create(
            gateway,
            key,
            model="rfake/plain",
            input="and?",
            max_output_tokens=10,
            previous_response_id=earlier,
        )
    assert caught.value.status_code == 402 and len(upstream.requests) == asked
    await create(gateway, key, model="rfake/plain", input="and?", max_output_tokens=10)
    assert len(upstream.requests) == asked + 1


BAD: list[tuple[dict[str, Any], int, str]] = [
    ({"model": "rfake/plain", "input": "x", "background": True}, 400, "unsupported_parameter"),
    (
        {"model": "rfake/plain", "input": "x", "conversation": "conv_1"},
        400,
        "unsupported_parameter",
    ),
    ({"model": "rfake/plain", "input": []}, 400, "empty_array"),
    ({"model": "rfake/plain"}, 400, "missing_required_parameter"),
    ({"model": "rfake/plain", "input": "x", "max_output_tokens": -1}, 400, "invalid_value"),
    ({"model": "rfake/plain", "input": "x", "previous_response_id": "a b"}, 400, "invalid_value"),
    ({"model": "nope", "input": "x"}, 404, "model_not_found"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD)
async def test_bad_input_is_an_openai_shaped_4xx_and_sends_nothing(
    gateway: Gateway, upstream: FakeUpstream, body: dict[str, Any], status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/v1/responses", json=body, headers={"Authorization": f"Bearer {gateway.admin_key}"}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert not upstream.requests


async def test_not_json_is_a_400_not_a_500(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        for raw in (b"", b"{", b"[]", b'{"model":"rfake/x","input":"\\ud800"}'):
            response = await client.post(
                "/v1/responses",
                content=raw,
                headers={"Authorization": f"Bearer {gateway.admin_key}"},
            )
            assert response.status_code == 400, raw
            assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_metered_key_may_not_send_what_its_bytes_do_not_bound(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    with pytest.raises(openai.BadRequestError) as caught:
        await create(
            gateway,
            key,
            model="rfake/plain",
            input="look it up",
            tools=[{"type": "web_search_preview"}],
        )
    assert caught.value.code == "unsupported_content"
    assert caught.value.param == "tools"  # the field that holds it, in this API's terms
    assert "tools[0] (web_search_preview)" in caught.value.message
    assert not upstream.requests
