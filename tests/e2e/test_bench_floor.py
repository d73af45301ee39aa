"""The bench's floor (bench/floor_app.py) is a working proxy: the bench divides
SafeRouter's figures by its own, so a floor that answered errors, or relayed a stream
only at its end, would make every ratio a lie — on every API's path, since each API's
figures are divided by the floor's on the same path (bench/apis.py). Served by
hypercorn on 127.0.0.1 in front of the real fake upstream; the real openai and anthropic
SDKs as the clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest
import trio

from bench.floor_app import create_floor_app

from ..servers import FakeUpstream, running_server

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def floor(upstream: FakeUpstream) -> AsyncIterator[str]:
    async with running_server(create_floor_app(upstream.url + "/v1")) as url:
        yield url


async def test_a_completion_is_relayed_as_the_upstream_sent_it(
    floor: str, upstream: FakeUpstream
) -> None:
    client = openai.AsyncOpenAI(base_url=floor + "/v1", api_key="unused", max_retries=0)
    completion = await client.chat.completions.create(model="plain", messages=MESSAGES)  # type: ignore[arg-type]
    await client.close()
    assert completion.model == "plain"
    assert completion.choices[0].message.content


async def test_the_clients_bytes_reach_the_upstream_as_sent(
    floor: str, upstream: FakeUpstream
) -> None:
    # odd spacing and key order: a floor that parsed and re-encoded would change them
    body = b'{"messages": [{"role": "user", "content": "Hi"}],   "model":"plain"}'
    async with httpx.AsyncClient() as client:
        response = await client.post(floor + "/v1/chat/completions", content=body)
    assert response.status_code == 200
    assert upstream.requests[-1]["raw"] == body


async def test_a_stream_is_relayed_chunk_by_chunk_not_at_its_end(
    floor: str, upstream: FakeUpstream
) -> None:
    client = openai.AsyncOpenAI(base_url=floor + "/v1", api_key="unused", max_retries=0)
    # four chunks 300 ms apart: the first must arrive well before the last is written
    stream = await client.chat.completions.create(
        model="slow:4:300",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    arrivals, texts = [], []
    async for chunk in stream:
        arrivals.append(trio.current_time())
        texts.append(chunk.choices[0].delta.content)
    await client.close()
    assert texts == ["0 ", "1 ", "2 ", "3 "]
    assert arrivals[-1] - arrivals[0] >= 0.6  # three gaps of 300 ms, not one burst


async def test_an_upstream_error_keeps_its_status_and_body(floor: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            floor + "/v1/chat/completions", json={"model": "status:429", "messages": MESSAGES}
        )
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/json")


async def test_messages_and_responses_streams_are_forwarded_on_their_own_paths(
    floor: str, upstream: FakeUpstream
) -> None:
    claude = anthropic.AsyncAnthropic(base_url=floor, api_key="unused", max_retries=0)
    async with claude.messages.stream(
        model="plain",
        max_tokens=16,
        messages=MESSAGES,  # type: ignore[arg-type]
    ) as stream:
        message = await stream.get_final_message()
    await claude.close()
    assert upstream.requests[-1]["path"] == "/v1/messages"
    assert message.stop_reason and message.content
    client = openai.AsyncOpenAI(base_url=floor + "/v1", api_key="unused", max_retries=0)
    events = [
        event.type
        async for event in await client.responses.create(model="plain", input="Hi", stream=True)
    ]
    await client.close()
    assert upstream.requests[-1]["path"] == "/v1/responses"
    assert events[-1] == "response.completed"
