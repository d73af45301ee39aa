"""Which URLs a live gateway answers (issue 15 §3–4): OpenRouter's ``/api/v1`` prefix
serves the ``/v1`` endpoints — chat completions in front of Quart and Quart's routes
alike, through the real ``openai`` SDK — the endpoints of OpenAI's and Anthropic's APIs
that SafeRouter does not serve say so (404 ``unsupported_endpoint``), whatever the
method, and no 404 sends the client to another service's documentation."""

from __future__ import annotations

import httpx
import openai
import pytest
import trio

from ..servers import Gateway
from .test_errors import assert_openai_error
from .test_sdk import _close_clients, _made

__all__ = ["_close_clients"]  # the fixture closing every SDK client made (test_sdk's)

UNSUPPORTED = [
    "/v1/embeddings",
    "/v1/completions",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/images/generations",
    "/v1/moderations",
    "/v1/files",
    "/v1/files/file-abc/content",
    "/v1/batches",
    "/v1/batches/batch_1/cancel",
    "/v1/fine_tuning/jobs",
    "/v1/assistants",
    "/v1/threads/thread_1/runs",
    "/v1/vector_stores",
    "/v1/realtime/sessions",
    "/v1/uploads",
    "/v1/messages/batches",
    "/v1/messages/batches/msgbatch_1/results",
    # a stored response or completion by id: in the operator's shared provider account
    "/v1/responses/resp_1",
    "/v1/responses/resp_1/input_items",
    "/v1/chat/completions/chatcmpl-1",
]
MESSAGES = [{"role": "user", "content": "over the prefix"}]


def prefixed(gateway: Gateway) -> openai.OpenAI:
    """The SDK as a client written for OpenRouter uses it: only the host changes."""
    made = openai.OpenAI(
        base_url=gateway.url + "/api/v1", api_key=gateway.admin_key, max_retries=0, timeout=30
    )
    _made.append(made)
    return made


async def test_every_unsupported_endpoint_says_so_whatever_the_method(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        for path in UNSUPPORTED:
            for method in ("GET", "POST", "DELETE"):
                response = await client.request(method, path, json={"model": "demo"})
                error = assert_openai_error(response, 404, "unsupported_endpoint")
                assert error["message"] == (
                    f"SafeRouter does not serve {path} "
                    "(it serves chat completions, responses and messages)."
                ), (method, path)
                assert error["type"] == "invalid_request_error"
            under_prefix = await client.post("/api" + path, json={"model": "demo"})
            assert_openai_error(under_prefix, 404, "unsupported_endpoint")
            assert path in under_prefix.json()["error"]["message"]


@pytest.mark.parametrize(
    "path", ["/v1/nothing-here", "/v1/embeddingsx", "/v1/filesystem", "/nowhere", "/api/v1/x"]
)
async def test_any_other_unknown_url_is_unknown_without_a_link(gateway: Gateway, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(path)
    error = assert_openai_error(response, 404, "unknown_url")
    assert "http" not in error["message"] and "openai.com" not in response.text


async def test_chat_over_the_prefix_with_the_openai_sdk(gateway: Gateway) -> None:
    def call() -> tuple[str, str]:
        sdk = prefixed(gateway)
        completion = sdk.chat.completions.create(model="demo", messages=MESSAGES)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in sdk.chat.completions.create(model="demo", messages=MESSAGES, stream=True)
            if chunk.choices
        )
        return completion.choices[0].message.content or "", streamed

    whole, streamed = await trio.to_thread.run_sync(call)
    assert 'You said: "over the prefix"' in whole
    assert 'You said: "over the prefix"' in streamed


async def test_models_over_the_prefix_with_the_openai_sdk(gateway: Gateway) -> None:
    def call() -> list[str]:
        return [model.id for model in prefixed(gateway).models.list()]

    assert "demo" in await trio.to_thread.run_sync(call)


async def test_the_prefix_keeps_what_each_path_answers(gateway: Gateway) -> None:
    """The rewritten request is the same request: leading slashes collapse as they do
    for /v1, the wrong method is a 405 naming the same path, a query survives."""
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        response = await client.post(
            "//api/v1/chat/completions", json={"model": "demo", "messages": MESSAGES}
        )
        assert response.status_code == 200, response.text
        error = assert_openai_error(await client.get("/api/v1/chat/completions"), 405)
        assert "/v1/chat/completions" in error["message"]
        page = await client.get("/api/v1/activity", params={"limit": "1"})
        assert page.status_code == 200 and len(page.json()["data"]) == 1
        assert_openai_error(await client.get("/api/v1//models"), 404, "unknown_url")
