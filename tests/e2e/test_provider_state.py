"""State kept at the provider under the operator's account, which every key shares, is
never named through the gateway: a Messages ``container`` (code-execution files) is
refused for every key, metered or not, before anything goes upstream — as the Responses
API's ``conversation`` and ``item_reference`` are."""

from __future__ import annotations

import httpx
import pytest

from ..servers import FakeUpstream, Gateway

BODY = {"model": "fake/ok", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("container", ["container_011CZ", {"id": "container_011CZ"}])
async def test_a_messages_container_is_refused_for_every_key(
    gateway: Gateway, upstream: FakeUpstream, container: object
) -> None:
    unmetered = await gateway.create_key()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/v1/messages", json={**BODY, "container": container}, headers={"x-api-key": unmetered}
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_parameter"
    assert error["message"].startswith("container:")
    assert upstream.requests == []
