"""The demo provider answers by path, as a real provider does (issue 15): each API's
format at its upstream path (DEMO_FORMATS), a 404 elsewhere."""

from __future__ import annotations

import json

import httpcore
import pytest

from saferouter.gateway.demo import DEMO_FORMATS, DemoTransport

BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()


async def post(url: str, body: bytes = BODY) -> tuple[int, bytes]:
    response = await DemoTransport().handle_async_request(
        httpcore.Request(b"POST", url, content=body)
    )
    return response.status, b"".join([part async for part in response.aiter_stream()])


async def test_chat_is_answered_at_its_path() -> None:
    assert b"/chat/completions" in DEMO_FORMATS
    status, body = await post("http://demo.invalid/v1/chat/completions")
    assert status == 200 and json.loads(body)["object"] == "chat.completion"


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/chat/completions/x", "/"])
async def test_a_path_no_format_serves_is_a_404(path: str) -> None:
    status, body = await post("http://demo.invalid" + path)
    assert status == 404 and json.loads(body)["error"]["message"] == "Not found"


async def test_a_body_that_is_not_an_object_is_a_400() -> None:
    status, _ = await post("http://demo.invalid/v1/chat/completions", b"[1]")
    assert status == 400
