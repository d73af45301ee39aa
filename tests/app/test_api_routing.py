"""Every API through one pipeline (issue 15), in process on the mock clock: a request
reaches only providers serving its API, a 200 its dialect reads as failed fails over,
the key may come as ``x-api-key``, and OpenRouter's fields never reach a provider.

The second API here is a real dialect written for the test — chat's body, sent to the
provider's ``/responses``, with its own failed-200 rule and in-band error event — so
the pipeline's API-neutral stages are tested apart from the Responses and Messages
dialects (tests/app and tests/e2e test those through their SDKs).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from saferouter.catalog import Api
from saferouter.config import Settings
from saferouter.errors import ApiError
from saferouter.gateway.dialect import ApiRequest, BodyFacts, Dialect
from saferouter.gateway.dialects.chat import CHAT, ChatDialect
from saferouter.gateway.pipeline import ApiCall, Reply, serve
from saferouter.gateway.receipts import RECEIPT_HEADER
from saferouter.storage import ActivityEntry, ActivityFilter

from .pipeline_harness import Harness, fake_model, read_all, running_pipeline, with_models
from .test_receipts import receipt_of

MESSAGES = [{"role": "user", "content": "hi"}]


class ResponsesShaped(ChatDialect):
    """A second API for the pipeline: chat's body and replies, sent to ``/responses``;
    a 200 whose model ends in ``:failed`` is a failure, as a Responses ``status:
    "failed"`` body is; a broken stream ends with an ``event: error``."""

    api = Api.RESPONSES
    path = "/v1/responses"
    upstream_path = "/responses"

    def parse(self, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
        return attrs.evolve(super().parse(body, headers), api=Api.RESPONSES)

    def body_facts(self, body: bytes) -> BodyFacts:
        facts = super().body_facts(body)
        if str(json.loads(body).get("model")).endswith(":failed"):
            return attrs.evolve(facts, failed="the response failed")
        return facts

    def stream_error(self, error: ApiError) -> bytes:
        return b"event: error\ndata: " + json.dumps({"code": error.code}).encode() + b"\n\n"


RESPONSES = ResponsesShaped()


def serving(*apis: Api, provider: str = "fake2") -> Any:
    """Settings where ``provider`` serves only ``apis``."""

    def configure(settings: Settings) -> Settings:
        changed = attrs.evolve(settings.catalog.providers[provider], apis=frozenset(apis))
        catalog = attrs.evolve(
            settings.catalog, providers={**settings.catalog.providers, provider: changed}
        )
        endpoint = attrs.evolve(settings.endpoints[provider], provider=changed)
        return attrs.evolve(
            settings, catalog=catalog, endpoints={**settings.endpoints, provider: endpoint}
        )

    return configure


async def send(
    p: Harness,
    dialect: Dialect,
    body: dict[str, Any],
    *,
    authorization: str | None = "",
    x_api_key: str | None = None,
) -> Reply:
    raw = json.dumps(body).encode()

    async def read_body() -> bytes:
        return raw

    call = ApiCall(
        dialect=dialect,
        authorization=f"Bearer {p.secret}" if authorization == "" else authorization,
        x_api_key=x_api_key,
        read_body=read_body,
        request_id="req_" + secrets.token_hex(6),
        started_s=trio.current_time(),
    )
    return await serve(p.ports, call)


async def entries(p: Harness) -> list[ActivityEntry]:
    found = await p.store.activity(ActivityFilter(limit=100))
    return sorted(found, key=lambda e: e.attempt)


async def test_a_model_whose_provider_lacks_the_api_is_refused_naming_those_serving_it(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, serving(Api.CHAT)) as p:
        with pytest.raises(ApiError) as refused:
            await send(p, RESPONSES, {"model": "chain-b", "messages": MESSAGES})
        error = refused.value
        assert (error.status, error.code, error.param) == (400, "unsupported_api", "model")
        assert "`chain-b` is not served through the Responses API" in error.message
        named = error.message.partition("Models that are: ")[2]
        assert "chain-a" in named and "deepseek-flash" in named and "demo" in named
        assert "chain-b" not in named and "glm-4.7" not in named  # fake2's and Z.AI's
        assert p.upstream.requests == [] and await entries(p) == []  # nothing reserved


async def test_fallbacks_go_only_to_providers_serving_the_api(
    tmp_path: Path, autojump_clock: object
) -> None:
    """chain-a (fake, a 503) falls back to chain-b (fake2, chat only)."""
    async with running_pipeline(tmp_path, serving(Api.CHAT)) as p:
        with pytest.raises(ApiError) as failed:
            await send(p, RESPONSES, {"model": "chain-a", "messages": MESSAGES})
        assert failed.value.status == 503
        assert p.upstream.targets == [b"http://scripted.invalid/v1/responses"]
        assert [e.served_model for e in await entries(p)] == ["chain-a"]
        reply = await send(p, CHAT, {"model": "chain-a", "messages": MESSAGES})
        assert reply.status == 200 and reply.headers["X-SafeRouter-Model"] == "chain-b"
        assert p.upstream.targets[1:] == [b"http://scripted.invalid/v1/chat/completions"] * 2


async def test_a_200_its_dialect_reads_as_failed_fails_over_and_bills_nothing(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        return with_models(
            settings,
            flaky=fake_model(settings, "flaky", "ok:failed", fallbacks=("quick",)),
            quick=fake_model(settings, "quick", "ok"),
        )

    async with running_pipeline(tmp_path, configure) as p:
        reply = await send(p, RESPONSES, {"model": "flaky", "messages": MESSAGES})
        assert reply.status == 200 and reply.headers["X-SafeRouter-Model"] == "quick"
        failed, served = await entries(p)
        assert (failed.served_model, failed.error_type, failed.cost_micro_usd) == (
            "flaky",
            "upstream_failed_response",
            0,
        )
        assert (served.served_model, served.outcome, served.prompt_tokens) == ("quick", "ok", 3)
        assert served.response_id == "chatcmpl-scripted" and served.finish_reason == "stop"
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])  # every price it used
        price = p.ports.settings.catalog.models["quick"].pricing.base
        assert receipt["prices"]["cache_write_micro_usd_per_mtok"] == price.cache_write


async def test_a_broken_stream_ends_with_its_dialects_error_event(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        body = {"model": "fake/stall:1", "messages": MESSAGES, "stream": True}
        reply = await send(p, RESPONSES, body)
        streamed = await read_all(reply)
        assert streamed.endswith(b'event: error\ndata: {"code": "upstream_stream_failed"}\n\n')
        assert b"[DONE]" not in streamed
        assert p.upstream.targets == [b"http://scripted.invalid/v1/responses"]


async def test_models_without_model_asks_the_first_and_openrouter_fields_stay_here(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        body = {
            "models": ["fake/ok", "fake2/ok"],
            "messages": MESSAGES,
            "provider": {"sort": "price"},
            "transforms": ["middle-out"],
            "route": "fallback",
            "usage": {"include": True},
        }
        reply = await send(p, CHAT, body)
        assert reply.status == 200 and reply.headers["X-SafeRouter-Model"] == "fake/ok"
        [sent] = p.upstream.requests
        assert sent == {"messages": MESSAGES, "model": "ok"}  # only what the provider asked
        [entry] = await entries(p)
        assert entry.requested_model == "fake/ok"


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "refusal"),
    [
        (None, "KEY", None),  # Anthropic's clients send x-api-key
        ("Bearer KEY", "KEY", None),  # both, the same key
        ("Bearer KEY", "sk-sr-other", "conflicting_api_keys"),
        (None, "sk-sr-wrong", "invalid_api_key"),
        (None, "  ", "missing_api_key"),
    ],
)
async def test_the_key_may_come_as_x_api_key(
    tmp_path: Path,
    autojump_clock: object,
    authorization: str | None,
    x_api_key: str,
    refusal: str | None,
) -> None:
    async with running_pipeline(tmp_path) as p:
        body = {"model": "fake/ok", "messages": MESSAGES}

        def real(value: str | None) -> str | None:
            return value.replace("KEY", p.secret) if value is not None else None

        try:
            reply = await send(
                p, CHAT, body, authorization=real(authorization), x_api_key=real(x_api_key)
            )
        except ApiError as error:
            assert (error.status, error.code) == (401, refusal)
            return
        assert refusal is None and reply.status == 200
