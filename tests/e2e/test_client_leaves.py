"""A client that leaves in the middle of a ``/v1/messages`` or ``/v1/responses`` stream
(the provider still sending): the upstream stream is closed, and the request settles
as closed by the client, billed what the provider reported and was relayed — the
prompt ``message_start`` counted, or an estimate of the text relayed — with the
reservation released."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from ..fake_messages import SMALL_USAGE
from ..servers import FakeUpstream, Gateway
from .anthropic_support import request_entries

HI = [{"role": "user", "content": "hi"}]


async def leave_after_first_text(gateway: Gateway, key: str, path: str, body: Any) -> str:
    """Stream ``body`` to ``path``, leave once the first text arrived; the request id."""
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream("POST", path, json=body, headers={"x-api-key": key}) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            if b"fake answer" in chunk:
                break
        request_id: str = response.headers["x-saferouter-request-id"]
    return request_id


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"model": "fake/stall", "max_tokens": 64, "messages": HI, "stream": True}),
        ("/v1/responses", {"model": "fake/stall", "input": "hi", "stream": True}),
    ],
)
async def test_a_client_that_leaves_mid_stream_is_billed_what_was_relayed(
    gateway: Gateway, upstream: FakeUpstream, path: str, body: Any
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    request_id = await leave_after_first_text(gateway, key, path, body)
    with trio.fail_after(20):  # the gateway notices the client left, then settles
        while not (entries := await request_entries(gateway, request_id)):
            await trio.sleep(0.05)
        while "cancelled:stall" not in upstream.events:
            await trio.sleep(0.05)
    (entry,) = entries
    assert entry.outcome == "client_closed"
    assert entry.cost_micro_usd > 0 and entry.completion_tokens > 0
    # what was relayed past the last usage report is an estimate, and says so
    assert entry.estimated
    if path == "/v1/messages":  # message_start said what the prompt was
        assert entry.prompt_tokens == SMALL_USAGE["input_tokens"]
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        auth = {"authorization": f"Bearer {key}"}
        credits = (await client.get("/v1/credits", headers=auth)).json()
    assert credits["reserved_micro_usd"] == 0
    assert credits["balance_micro_usd"] == 10_000_000 - entry.cost_micro_usd
