"""A gateway for the Responses API tests: the shipped catalog plus providers at the fake
upstream that serve the Responses API (``rfake``, ``rfake2``) and one that does not
(``chatonly``), with chains over them; and the real openai SDK with a transport that
keeps every byte it received."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai

from saferouter.catalog import Price
from saferouter.config import load_settings

from ..servers import Gateway, running_gateway, write_catalog

FAILED_200 = "responses/pydantic-ai__bedrock-mantle_gpt-oss-120b_status_failed_http200.json"
RFAKE_PRICE = Price(input=1_250_000, cached_input=125_000, output=10_000_000, cache_write=1_500_000)
CATALOG = """
[providers.rfake]
name = "Responses upstream"
base_url = "{url}/v1"
api_key_env = "FAKE_API_KEY"
apis = ["chat", "responses"]
default_price = {{ input = "1.25", cached_input = "0.125", output = "10", cache_write = "1.5" }}

[providers.rfake2]
name = "Responses upstream two"
base_url = "{url}/v1"
api_key_env = "FAKE_API_KEY"
apis = ["responses"]
default_price = {{ input = "2.5", cached_input = "0.25", output = "20" }}

[providers.chatonly]
name = "Chat-only upstream"
base_url = "{url}/v1"
api_key_env = "FAKE_API_KEY"
default_price = {{ input = "1", cached_input = "1", output = "1" }}

[[models]]
id = "resp-chain"
provider = "rfake"
upstream = "status:503"
context_length = 100000
max_output = 1000
price = {{ input = "1.25", output = "10" }}
fallbacks = ["chat-only", "resp-b"]

[[models]]
id = "resp-b"
provider = "rfake2"
upstream = "answer-b"
context_length = 100000
max_output = 1000
price = {{ input = "2.5", output = "20" }}

[[models]]
id = "chat-only"
provider = "chatonly"
upstream = "answer-chat"
context_length = 100000
max_output = 1000
price = {{ input = "1", output = "1" }}

[[models]]
id = "resp-failed"
provider = "rfake"
upstream = "file:{failed}"
context_length = 100000
max_output = 1000
price = {{ input = "1.25", output = "10" }}
fallbacks = ["resp-b"]
"""


@asynccontextmanager
async def responses_gateway(
    tmp_path: Path, upstream_url: str, **env: str
) -> AsyncIterator[Gateway]:
    """A running gateway over the Responses catalog above."""
    catalog = write_catalog(tmp_path / "catalog.toml", upstream_url)
    with catalog.open("a") as out:
        out.write(CATALOG.format(url=upstream_url, failed=FAILED_200))
    environ = {"FAKE_API_KEY": "sk-upstream-secret-1234", **env}
    settings = load_settings(environ, config=catalog, data_dir=tmp_path / "data")
    async with running_gateway(settings) as gateway:
        yield gateway


class Tee(httpx2.BaseTransport):
    """The SDK's HTTP transport, keeping the bytes of every response body it read."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()
        self.bodies: list[bytearray] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        kept = bytearray()
        self.bodies.append(kept)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_TeeStream(response, kept),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


class _TeeStream(httpx2.SyncByteStream):
    def __init__(self, response: httpx2.Response, kept: bytearray) -> None:
        self._response, self._kept = response, kept

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._response.stream:  # type: ignore[union-attr]
            self._kept += chunk
            yield chunk

    def close(self) -> None:
        self._response.close()


def sdk(gateway: Gateway, key: str) -> tuple[openai.OpenAI, Tee]:
    """The openai SDK pointed at ``gateway`` with ``key``, and what it receives."""
    tee = Tee()
    client = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=key,
        max_retries=0,
        timeout=30,
        http_client=httpx2.Client(transport=tee),
    )
    return client, tee


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_temperature",
    "description": "The temperature in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
