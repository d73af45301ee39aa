"""What the Anthropic-client tests share: a gateway whose catalog has Claude-named models
(a 529 chain and cache-write prices), the real ``anthropic`` SDK on a transport that
keeps the bytes it received, and a request's activity entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx2

from saferouter.catalog import Price
from saferouter.config import Settings, load_settings
from saferouter.storage.records import ActivityEntry

from ..servers import Gateway, write_catalog

HI = [{"role": "user", "content": "Hi"}]
# a catalog chain whose first provider is overloaded (529), cache-write prices, and a
# provider that serves chat completions only
CLAUDE_MODELS = """
[providers.chatonly]
name = "Chat only"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "FAKE_API_KEY"

[[models]]
id = "chat-only"
provider = "chatonly"
context_length = 1000
max_output = 100
price = { input = "1", output = "1" }

[[models]]
id = "claude-overloaded"
provider = "fake"
upstream = "overloaded"
context_length = 200000
max_output = 64000
price = { input = "3", cached_input = "0.3", cache_write = "3.75", output = "15" }
fallbacks = ["claude-cache"]

[[models]]
id = "claude-cache"
provider = "fake2"
upstream = "replay:anthropic/pydantic-ai__claude_cache_read_and_write__i1.json"
context_length = 200000
max_output = 64000
price = { input = "3", cached_input = "0.3", cache_write = "3.75", output = "15" }
"""
CLAUDE_PRICE = Price(
    input=3_000_000, cached_input=300_000, output=15_000_000, cache_write=3_750_000
)


def claude_settings(tmp_path: Path, upstream_url: str) -> Settings:
    """The e2e gateway's settings, with the Claude-named models added to its catalog."""
    catalog = write_catalog(tmp_path / "catalog.toml", upstream_url)
    catalog.write_text(catalog.read_text() + CLAUDE_MODELS)
    environ = {"FAKE_API_KEY": "sk-upstream-secret-1234"}
    return load_settings(environ, config=catalog, data_dir=tmp_path / "data")


class Tee(httpx2.AsyncBaseTransport):
    """A real HTTP transport that keeps every byte of each response body it hands over."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.received: list[bytearray] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        sink = bytearray()
        self.received.append(sink)
        inner = response.stream

        class Teed(httpx2.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in inner:  # type: ignore[union-attr]
                    sink.extend(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await inner.aclose()  # type: ignore[union-attr]

        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=Teed(),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def sdk(gateway: Gateway, tee: Tee | None = None, **auth: str) -> anthropic.AsyncAnthropic:
    """The real SDK, pointed at the gateway as ANTHROPIC_BASE_URL (no retries)."""
    return anthropic.AsyncAnthropic(
        base_url=gateway.url,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=tee or Tee(), timeout=30),
        **auth,
    )


async def request_entries(gateway: Gateway, request_id: str) -> list[ActivityEntry]:
    """The activity entries of one request, by attempt."""
    entries = await gateway.store.activity_since(0, None)
    return sorted((e for e in entries if e.request_id == request_id), key=lambda e: e.attempt)
