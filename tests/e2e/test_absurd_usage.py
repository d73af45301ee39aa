"""A provider reporting an absurd token count (JSON has no integer bound: 10**30) on
chat completions or Messages: the request still settles — the count kept at
``MAX_REPORTED_TOKENS``, a metered key charged at most its reservation, the rest the
operator's recorded overrun, the reservation released — instead of a 500 that left the
request unsettled and its reservation held."""

from __future__ import annotations

import httpx
import pytest

from saferouter.accounting import MAX_REPORTED_TOKENS

from ..servers import Gateway
from .anthropic_support import request_entries

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": f"fake/usage:{10**30}", "messages": HI}),
        ("/v1/messages", {"model": f"fake/usage:{10**30}", "max_tokens": 5, "messages": HI}),
        ("/v1/messages", {"model": f"fake/usage:{2**62}", "max_tokens": 5, "messages": HI}),
    ],
)
async def test_an_absurd_usage_report_settles_within_the_reservation(
    gateway: Gateway, path: str, body: dict[str, object]
) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(path, json=body, headers={"x-api-key": key})
        assert response.status_code == 200, response.text
        auth = {"authorization": f"Bearer {key}"}
        credits = (await client.get("/v1/credits", headers=auth)).json()
    (entry,) = await request_entries(gateway, response.headers["x-saferouter-request-id"])
    assert entry.completion_tokens == MAX_REPORTED_TOKENS
    assert credits["reserved_micro_usd"] == 0  # released
    charged = 10_000_000 - credits["balance_micro_usd"]
    assert 0 < charged == entry.cost_micro_usd  # at most the reservation, never the rest
    assert entry.overrun_micro_usd > 0
    assert await gateway.store.overrun_micro_usd() == entry.overrun_micro_usd
