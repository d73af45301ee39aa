"""The Responses API end to end, past the recordings: the built-in demo provider through
the openai SDK's strictest reader (``responses.stream``, which checks every event's
place), a stream cut before its terminal event, and a receipt that verifies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from saferouter.storage import ActivityFilter

from ..processes import serving
from ..recordings import typed_stream_bytes
from ..servers import FakeUpstream, Gateway, write_catalog
from .responses_gateway import CATALOG, FAILED_200, responses_gateway, sdk
from .test_verify_receipt import receipt_of, user_key, verify_receipt, write

DEEPSEEK_TEXT = "streams/deepseek/pydantic-ai__deepseek-v4-flash_responses_api_text_stream.sse"


@pytest.fixture
async def gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with responses_gateway(tmp_path, upstream.url) as gw:
        yield gw


async def test_the_demo_speaks_the_responses_api_to_the_sdk(gateway: Gateway) -> None:
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, _ = sdk(gateway, key)

    def call() -> tuple[Any, list[str], Any]:
        with client:
            whole = client.responses.create(model="demo", input="Tell me about trio")
            with client.responses.stream(model="demo", input="stream me") as stream:
                kinds = [event.type for event in stream]
                final = stream.get_final_response()
        return whole, kinds, final

    whole, kinds, final = await trio.to_thread.run_sync(call)
    assert 'You said: "Tell me about trio"' in whole.output_text
    assert whole.usage.input_tokens > 0 and whole.status == "completed"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert 'You said: "stream me"' in final.output_text
    entries = await gateway.store.activity(ActivityFilter(limit=10))
    assert {(e.api, e.provider, e.outcome) for e in entries} == {("responses", "demo", "ok")}
    assert {e.response_id for e in entries} == {whole.id, final.id}


async def test_a_stream_cut_before_its_terminal_event_ends_with_the_apis_error_event(
    testdata: object, gateway: Gateway
) -> None:
    """No [DONE] in this API: a stream that ends without response.completed was cut. The
    client gets what was sent, then an ``event: error`` in the Responses API's shape,
    which the SDK reads as a ResponseErrorEvent; the text relayed is billed, estimated."""
    key = await gateway.create_key(credits_micro_usd=10_000_000)
    client, tee = sdk(gateway, key)

    def call() -> list[Any]:
        with client:
            return list(
                client.responses.create(model=f"rfake/cut:{DEEPSEEK_TEXT}", input="hi", stream=True)
            )

    events = await trio.to_thread.run_sync(call)
    received = bytes(tee.bodies[-1])
    sent, _, error_event = received.rpartition(b"event: error\n")
    assert typed_stream_bytes(DEEPSEEK_TEXT).startswith(sent)
    assert b"response.completed" not in sent
    data = json.loads(error_event.removeprefix(b"data: "))
    assert set(data) == {"type", "code", "message", "param", "sequence_number"}
    assert data["type"] == "error" and data["code"] == "upstream_stream_incomplete"
    assert events[-1].type == "error" and events[-1].code == "upstream_stream_incomplete"
    (entry,) = await gateway.store.activity(ActivityFilter(limit=10))
    assert entry.outcome == "error" and entry.error_type == "upstream_stream_incomplete"
    assert entry.estimated and entry.completion_tokens > 0


async def test_a_responses_receipt_verifies(
    testdata: object, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """`saferouter serve` with receipts; a streamed Responses answer after a failed 200
    (two attempts in the receipt); `saferouter verify-receipt` over the bytes received."""
    folder = tmp_path / "gw"
    folder.mkdir()
    catalog = write_catalog(folder / "catalog.toml", upstream.url)
    with catalog.open("a") as out:
        out.write(CATALOG.format(url=upstream.url, failed=FAILED_200))
    running = serving(folder / "data", "--config", str(catalog), env={"FAKE_API_KEY": "sk-up"})
    served = await trio.to_thread.run_sync(running.__enter__)
    try:
        secret = await user_key(served, folder)
        request = {"model": "resp-failed", "input": "hi", "stream": True}
        async with (
            httpx.AsyncClient(base_url=served.url, timeout=30) as client,
            client.stream(
                "POST",
                "/v1/responses",
                json=request,
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.status_code == 200 and b"response.completed" in body
        document = await receipt_of(served, secret, response.headers["x-saferouter-receipt"])
        assert [a["provider"] for a in document["receipt"]["attempts"]] == ["rfake", "rfake2"]
        receipt_file, body_file = write(tmp_path, "r.json", document), write(tmp_path, "b", body)
        code, out = await verify_receipt(
            tmp_path, receipt_file, "--response", body_file, "--gateway", served.url
        )
        assert code == 0, out
        code, _ = await verify_receipt(
            tmp_path,
            receipt_file,
            "--response",
            write(tmp_path, "b2", body.replace(b"in_progress", b"in_progresS", 1)),
            "--gateway",
            served.url,
        )
        assert code != 0
    finally:
        await trio.to_thread.run_sync(running.__exit__, None, None, None)
