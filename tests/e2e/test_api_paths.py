"""The API adapter over a real socket (issue 15): the key in ``x-api-key`` as Anthropic's
clients send it, a query string ignored (Claude Code posts ``/v1/messages?beta=true``),
leading slashes collapsed, and a request id on every answer."""

from __future__ import annotations

import httpx
import pytest

from ..servers import FakeUpstream, Gateway

BODY = {"model": "fake/echo", "messages": [{"role": "user", "content": "hi"}]}


async def post(gateway: Gateway, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:  # no base URL: "//v1" stays a path
        return await client.post(gateway.url + path, json=BODY, headers=headers)


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions?beta=true", "//v1/chat/completions", "/v1/chat/completions?"]
)
async def test_the_key_in_x_api_key_is_served_whatever_the_query(
    gateway: Gateway, upstream: FakeUpstream, path: str
) -> None:
    secret = await gateway.create_key(credits_micro_usd=1_000_000)
    response = await post(gateway, path, {"x-api-key": secret})
    assert response.status_code == 200, response.text
    assert response.headers["x-saferouter-request-id"].startswith("req_")
    [sent] = upstream.requests  # the provider gets its own key, never the client's
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream-secret-1234"
    assert secret not in str(sent["headers"]) and "x-api-key" not in {
        k.lower() for k in sent["headers"]
    }


async def test_two_different_keys_are_refused_before_anything_is_read(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    secret = await gateway.create_key(credits_micro_usd=1_000_000)
    other = await gateway.create_key(credits_micro_usd=1_000_000)
    response = await post(
        gateway, "/v1/chat/completions", {"x-api-key": secret, "authorization": f"Bearer {other}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "conflicting_api_keys"
    assert response.headers["x-saferouter-request-id"].startswith("req_")
    assert secret not in response.text and other not in response.text
    assert upstream.requests == []
