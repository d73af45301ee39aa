"""The calling app (OpenRouter's ``HTTP-Referer`` and ``X-Title``) on a live gateway:
recorded in the request's activity, filtered and grouped by in the activity API, sent
by the real ``openrouter`` SDK as it sends them; a value that cannot be kept is dropped
and the request served all the same."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from openrouter import OpenRouter

from ..servers import Gateway

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "who am I"}]}


async def chat(gateway: Gateway, key: str, headers: dict[str, str], path: str) -> str:
    """A chat completion sent with ``headers``; its request id."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            path, json=CHAT, headers={"Authorization": f"Bearer {key}", **headers}
        )
    assert response.status_code == 200, response.text
    return response.headers["x-saferouter-request-id"]


async def activity(gateway: Gateway, key: str, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_app_is_recorded_filtered_and_grouped_by(gateway: Gateway) -> None:
    key = await gateway.create_key("apps")
    titled = await chat(
        gateway,
        key,
        {"X-Title": "Cline", "HTTP-Referer": "https://cline.bot"},
        "/v1/chat/completions",
    )
    referred = await chat(
        gateway, key, {"HTTP-Referer": "https://my.app"}, "/api/v1/chat/completions"
    )
    anonymous = await chat(gateway, key, {}, "/v1/chat/completions")
    log = {e["request_id"]: e for e in (await activity(gateway, key, "/v1/activity"))["data"]}
    assert (log[titled]["app"], log[titled]["app_title"], log[titled]["app_referer"]) == (
        "Cline",
        "Cline",
        "https://cline.bot",
    )
    assert (log[referred]["app"], log[referred]["app_title"]) == ("https://my.app", None)
    assert log[anonymous]["app"] is None
    assert log[titled]["api"] == "chat"
    only = await activity(gateway, key, "/v1/activity", app="Cline")
    assert [e["request_id"] for e in only["data"]] == [titled]
    stats = await activity(gateway, key, "/v1/activity/stats", window="1h")
    assert {name: group["total"] for name, group in stats["by_app"].items()} == {
        "Cline": 1,
        "https://my.app": 1,
    }


@pytest.mark.parametrize(
    "bad",
    [b"tab\tinside", b"x" * 201, "right\u202eleft".encode(), b"\xff\xfe not utf-8"],
    ids=["tab", "too long", "bidi override", "not utf-8"],
)
async def test_an_app_that_cannot_be_kept_is_dropped_and_the_request_served(
    gateway: Gateway, bad: bytes
) -> None:
    """(A newline or NUL cannot reach the gateway at all: the HTTP server refuses the
    request line by line, before any app; the unit tests cover them.)"""
    key = await gateway.create_key("bad")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers=[
                (b"authorization", f"Bearer {key}".encode()),
                (b"x-title", bad),
                (b"http-referer", b"https://kept.example"),
            ],
        )
    assert response.status_code == 200, response.text
    (entry,) = (await activity(gateway, key, "/v1/activity"))["data"]
    assert entry["app_title"] is None
    assert entry["app_referer"] == "https://kept.example"  # only the bad one is dropped


async def test_the_openrouter_sdk_names_its_app(gateway: Gateway) -> None:
    key = await gateway.create_key("sdk")

    def call() -> None:
        with OpenRouter(
            api_key=key,
            server_url=gateway.url + "/api/v1",
            http_referer="https://sdk.example",
            x_open_router_title="SDK App",
        ) as sdk:
            sdk.chat.send(model="demo", messages=[{"role": "user", "content": "hello"}])

    await trio.to_thread.run_sync(call)
    (entry,) = (await activity(gateway, key, "/v1/activity"))["data"]
    assert (entry["app_title"], entry["app_referer"]) == ("SDK App", "https://sdk.example")
