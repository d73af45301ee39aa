"""The real `openai` Python SDK against a live gateway (the SDK runs in a thread: it
blocks, and the servers share this trio loop)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import trio

from saferouter.config import load_settings

from ..servers import FakeUpstream, Gateway, fake_upstream, running_gateway

_made: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each SDK client owns a connection pool: close them all after each test."""
    yield
    while _made:
        _made.pop().close()


def client(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    made = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=key or gateway.admin_key, max_retries=0, timeout=30
    )
    _made.append(made)
    return made


async def test_sdk_non_stream_with_demo(gateway: Gateway) -> None:
    def call() -> object:
        return client(gateway).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "Tell me about trio"}]
        )

    completion = await trio.to_thread.run_sync(call)
    message = completion.choices[0].message  # type: ignore[attr-defined]
    assert 'You said: "Tell me about trio"' in message.content
    assert message.model_extra["reasoning_content"].startswith("The user wrote 4 words")
    assert completion.usage.total_tokens > 0  # type: ignore[attr-defined]


async def test_sdk_stream_shows_reasoning_then_content(gateway: Gateway) -> None:
    def call() -> tuple[list[str], list[str], list[str | None]]:
        reasoning, content, finish = [], [], []
        stream = client(gateway).chat.completions.create(
            model="demo", stream=True, messages=[{"role": "user", "content": "stream me"}]
        )
        for chunk in stream:
            delta = chunk.choices[0].delta
            if (delta.model_extra or {}).get("reasoning_content"):
                reasoning.append(delta.model_extra["reasoning_content"])
            if delta.content:
                content.append(delta.content)
            finish.append(chunk.choices[0].finish_reason)
        return reasoning, content, finish

    reasoning, content, finish = await trio.to_thread.run_sync(call)
    assert len(reasoning) >= 3
    assert "".join(content).startswith('You said: "stream me".')
    assert finish[-1] == "stop"


async def test_sdk_errors_become_sdk_exceptions(gateway: Gateway) -> None:
    def unknown_model() -> None:
        client(gateway).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )

    with pytest.raises(openai.NotFoundError) as info:
        await trio.to_thread.run_sync(unknown_model)
    assert info.value.code == "model_not_found"

    def bad_key() -> None:
        client(gateway, "sk-sr-bad").chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "x"}]
        )

    with pytest.raises(openai.AuthenticationError):
        await trio.to_thread.run_sync(bad_key)


async def test_sdk_lists_models(gateway: Gateway) -> None:
    models = await trio.to_thread.run_sync(lambda: list(client(gateway).models.list()))
    ids = {m.id for m in models}
    assert {"demo", "deepseek-flash", "deepseek-v4-pro", "glm-4.7", "glm-5.3"} <= ids
    demo = next(m for m in models if m.id == "demo")
    assert demo.model_extra["demo"] is True and demo.model_extra["available"] is True


async def test_third_provider_through_config_alone(testdata: object, tmp_path: Path) -> None:
    """A catalog that adds `acme` (any OpenAI-compatible API) — no code change. Its model
    replays a recorded stream, hence ``testdata``."""
    async with fake_upstream() as upstream:
        catalog = tmp_path / "acme.toml"
        catalog.write_text(f"""
[providers.acme]
name = "Acme AI"
base_url = "{upstream.url}/v1"
api_key_env = "ACME_KEY"
headers = {{ "X-Acme-Org" = "org-42" }}

[[models]]
id = "acme-large"
provider = "acme"
upstream = "replay:streams/deepseek/pydantic-ai__deepseek-v4-flash_thinking_stream.sse"
context_length = 32000
max_output = 4000
capabilities = ["reasoning"]
price = {{ input = "1.25", output = "5" }}
""")
        settings = load_settings(
            {"ACME_KEY": "acme-secret"}, config=catalog, data_dir=tmp_path / "data"
        )
        async with running_gateway(settings) as gateway:

            def call() -> str:
                stream = client(gateway).chat.completions.create(
                    model="acme-large", stream=True, messages=[{"role": "user", "content": "x"}]
                )
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

            text = await trio.to_thread.run_sync(call)
            models = await trio.to_thread.run_sync(lambda: list(client(gateway).models.list()))
    assert text  # the recorded answer came through the SDK
    assert [m.id for m in models] == ["acme-large"]
    sent = upstream.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer acme-secret"
    assert sent["headers"]["X-Acme-Org"] == "org-42"


async def test_provider_base_url_and_key_come_from_env(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """DEEPSEEK_BASE_URL points DeepSeek at another endpoint (a proxy, here the fake);
    legacy `deepseek-reasoner` goes out as v4-flash with thinking enabled."""
    settings = load_settings(
        {"DEEPSEEK_API_KEY": "ds-key", "DEEPSEEK_BASE_URL": upstream.url + "/v1/"},
        data_dir=tmp_path / "data",
    )
    async with running_gateway(settings) as gateway:

        def call() -> object:
            return client(gateway).chat.completions.with_raw_response.create(
                model="deepseek-reasoner", messages=[{"role": "user", "content": "x"}]
            )

        raw = await trio.to_thread.run_sync(call)
    sent = upstream.requests[-1]
    assert sent["body"]["model"] == "deepseek-v4-flash"
    assert sent["body"]["thinking"] == {"type": "enabled"}
    assert sent["headers"]["Authorization"] == "Bearer ds-key"
    assert raw.headers["x-saferouter-model"] == "deepseek-reasoner"  # type: ignore[attr-defined]
