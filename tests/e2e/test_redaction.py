"""A provider that quotes the gateway's credentials back never gets them to a client,
the activity log, the database or the logs: they arrive as ``[redacted]``."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
import trio

from saferouter.gateway.redact import REDACTED

from ..servers import FakeUpstream, gateway_settings, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]
SHAPED = "sk-upstream-secret-1234"  # looks like a key: caught by its shape too
FAILURES = ((400, openai.BadRequestError), (500, openai.InternalServerError))  # 500 → 502
UNSHAPED = "zai.7f3a9c0d2e1b4f5a/8c6d+e9="  # caught only as the provider key itself


@pytest.mark.parametrize("provider_key", [SHAPED, UNSHAPED])
async def test_upstream_text_quoting_the_key_is_redacted(
    upstream: FakeUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    provider_key: str,
) -> None:
    settings = gateway_settings(tmp_path, upstream.url, FAKE_API_KEY=provider_key)
    seen: list[str] = []
    async with running_gateway(settings) as gateway:
        async with openai.AsyncOpenAI(
            base_url=gateway.url + "/v1", api_key=gateway.admin_key, max_retries=0
        ) as sdk:
            for status, failure in (
                (400, openai.BadRequestError),
                (500, openai.InternalServerError),
            ):
                for stream in (False, True):
                    with pytest.raises(failure) as caught:
                        await sdk.chat.completions.create(
                            model=f"fake/leak:{status}", messages=MESSAGES, stream=stream
                        )  # type: ignore[call-overload]
                    seen.append(caught.value.response.text)
                    assert REDACTED in caught.value.message, caught.value.message
        async with httpx.AsyncClient(
            base_url=gateway.url,
            timeout=30,
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        ) as client:
            streamed = await client.post(
                "/v1/chat/completions",
                json={"model": "fake/leak:stream", "stream": True, "messages": MESSAGES},
            )
            seen.append(streamed.text)
            assert streamed.status_code == 200 and REDACTED in streamed.text
            # its receipt holds the provider's usage object as reported: redacted too
            receipt = await receipt_when_signed(client, streamed.headers["x-saferouter-receipt"])
            assert receipt.json()["receipt"]["usage"]["billed_to"] == REDACTED
            seen.append(receipt.text)
            seen.append((await client.get("/v1/activity")).text)
            seen.append((await client.get("/metrics")).text)
    assert len(upstream.requests) >= 5  # the fake upstream did quote the key back
    for text in seen:
        assert provider_key not in text, text
    assert provider_key not in caplog.text
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            assert provider_key.encode() not in path.read_bytes(), path


async def receipt_when_signed(client: httpx.AsyncClient, receipt_id: str) -> httpx.Response:
    """``GET /v1/receipts/{id}`` once the response has ended (a stream's receipt is
    written just after its last byte), within a generous bound."""
    with trio.fail_after(30):
        while (answer := await client.get(f"/v1/receipts/{receipt_id}")).status_code == 409:
            await trio.sleep(0.05)
    assert answer.status_code == 200, answer.text
    return answer
