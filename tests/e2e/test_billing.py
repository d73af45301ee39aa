"""What the books say after real traffic: every recording billed at final_usage × price,
usage events hidden unless asked for, cut streams estimated, failures free."""

from __future__ import annotations

import json
from contextlib import aclosing

import httpx
import openai
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd, normalize_usage

from ..recordings import (
    RECORDINGS,
    entry,
    jsonl_paths,
    nonstream_paths,
    recording_params,
    sse_paths,
)
from ..servers import FAKE_PRICE, FakeUpstream, Gateway

STREAMS = sse_paths() + jsonl_paths()


async def last_activity(gateway: Gateway, key: str) -> dict[str, object]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        with trio.fail_after(5):
            while True:
                data = (await client.get("/v1/activity", params={"limit": 1})).json()["data"]
                if data:
                    return data[0]
                await trio.sleep(0.01)


@pytest.mark.parametrize("relative", recording_params(STREAMS + nonstream_paths()))
async def test_every_recording_is_billed_at_its_final_usage(
    testdata: object, gateway: Gateway, relative: str
) -> None:
    assert RECORDINGS is not None
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    streamed = not relative.startswith("nonstream/")
    mode = "replay" if streamed else "file"
    body = {
        "model": f"fake/{mode}:{relative}",
        "stream": streamed,
        "max_tokens": 20_000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
        credits = (await client.get("/v1/credits")).json()
    if streamed:
        raw = entry(relative)["analysis"]["final_usage"]
    else:
        raw = json.loads((RECORDINGS / relative).read_bytes())["usage"]
    activity = await last_activity(gateway, key)
    if raw is None:
        # no usage at all: the text relayed is billed as an estimate; no text, no charge
        if activity["estimated"]:
            assert activity["completion_tokens"] > 0 and activity["cost_micro_usd"] > 0
        else:
            assert activity["cost_micro_usd"] == 0 == activity["completion_tokens"]
        assert credits["spent_micro_usd"] == activity["cost_micro_usd"]
        return
    usage = normalize_usage(raw)
    expected = cost_micro_usd(usage, FAKE_PRICE)
    assert activity["estimated"] is False
    assert (
        activity["prompt_tokens"],
        activity["completion_tokens"],
        activity["cached_tokens"],
        activity["reasoning_tokens"],
    ) == (usage.prompt_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens)
    assert activity["cost_micro_usd"] == expected
    assert credits["spent_micro_usd"] == expected
    assert credits["balance_micro_usd"] == 10_000_000 - expected
    assert credits["reserved_micro_usd"] == 0
    assert await gateway.store.check_books() == []


async def test_sdk_never_sees_the_usage_chunk_unless_it_asks(
    testdata: object, gateway: Gateway
) -> None:
    model = "fake/replay:streams/openai/openai-python__test_parse_nothing.sse"
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.admin_key, max_retries=0)

    def iterate(**extra: object) -> list[object]:
        stream = sdk.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "x"}], **extra
        )
        seen = []
        for chunk in stream:
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content)
            else:
                seen.append(chunk.usage)
        return seen

    with sdk:
        plain = await trio.to_thread.run_sync(iterate)
        asked = await trio.to_thread.run_sync(
            lambda: iterate(stream_options={"include_usage": True})
        )
    assert all(isinstance(item, str | None) for item in plain)  # choices[0] always there
    assert asked[:-1] == plain
    assert asked[-1].total_tokens == 44  # type: ignore[attr-defined]
    # both streams were billed from the usage the gateway asked for
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}
    ) as c:
        entries = (await c.get("/v1/activity")).json()["data"]
    assert [e["completion_tokens"] for e in entries] == [30, 30]
    assert all(not e["estimated"] for e in entries)


async def test_client_disconnect_mid_stream_is_billed_as_an_estimate(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    body = {
        "model": "fake/slow:1000:10",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async with aclosing(response.aiter_raw()) as chunks:
                got = 0
                async for chunk in chunks:
                    got += chunk.count(b"data: ")
                    if got >= 5:
                        break
    activity = await last_activity(gateway, key)
    assert activity["outcome"] == "client_closed" and activity["status"] == 499
    assert activity["estimated"] is True and activity["completion_tokens"] >= 1
    assert activity["cost_micro_usd"] == cost_micro_usd(
        Usage(
            prompt_tokens=activity["prompt_tokens"],  # type: ignore[arg-type]
            output_tokens=activity["completion_tokens"],
        ),
        FAKE_PRICE,
    )  # type: ignore[arg-type]
    assert await gateway.store.check_books() == []
    books = await gateway.store.books((await gateway.store.list_keys())[-1].id)
    assert books.reserved_micro_usd == 0 and books.spent_micro_usd == activity["cost_micro_usd"]


@pytest.mark.parametrize("mode", ["status:500", "status:400", "status:429", "status:503"])
async def test_failed_requests_cost_nothing(gateway: Gateway, mode: str) -> None:
    key = await gateway.create_key(credits_micro_usd=1_000_000)
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for stream in (False, True):
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "model": f"fake/{mode}",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            assert response.status_code >= 400
        credits = (await client.get("/v1/credits")).json()
        entries = (await client.get("/v1/activity")).json()["data"]
    assert credits["spent_micro_usd"] == 0 and credits["balance_micro_usd"] == 1_000_000
    assert credits["reserved_micro_usd"] == 0
    assert [e["outcome"] for e in entries] == ["error", "error"]
    assert all(e["cost_micro_usd"] == 0 for e in entries)


async def test_insufficient_credit_is_402_and_never_reaches_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    key = await gateway.create_key(credits_micro_usd=100)  # $0.0001
    async with httpx.AsyncClient(
        base_url=gateway.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "fake/anything",
                "max_tokens": 1000,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        entries = (await client.get("/v1/activity")).json()["data"]
    assert response.status_code == 402
    assert response.json()["error"]["type"] == "insufficient_quota"
    assert upstream.requests == []
    assert entries[0]["outcome"] == "rejected" and entries[0]["status"] == 402
