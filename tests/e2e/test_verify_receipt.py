"""`saferouter verify-receipt` on real receipts from a live gateway (real fake upstream,
the real openai SDK as the client), and on each way one can be forged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import trio

from ..processes import cli
from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway

MESSAGES = [{"role": "user", "content": "a prompt"}]


async def receipt_of(gateway: Gateway, secret: str, receipt_id: str) -> dict[str, Any]:
    """GET /v1/receipts/{id}, once the response has ended (409 until then)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        with trio.fail_after(30):
            while True:
                response = await client.get(
                    f"/v1/receipts/{receipt_id}", headers={"Authorization": f"Bearer {secret}"}
                )
                if response.status_code != 409:
                    break
                await trio.sleep(0.05)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def chat(gateway: Gateway, secret: str, model: str) -> tuple[dict[str, Any], bytes]:
    """One chat through the openai SDK: the receipt document and the exact body bytes."""
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    body = raw.http_response.content
    return await receipt_of(gateway, secret, raw.headers["x-saferouter-receipt"]), body


async def stream(gateway: Gateway, secret: str, model: str) -> tuple[dict[str, Any], bytes]:
    """A streamed chat: the receipt and every byte of the SSE stream as received."""
    request = {"model": model, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=request, headers=headers) as response,
    ):
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return await receipt_of(gateway, secret, response.headers["x-saferouter-receipt"]), body


def write(folder: Path, name: str, data: bytes | dict[str, Any]) -> str:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(path)


async def verify_receipt(tmp_path: Path, *args: str) -> tuple[int, str]:
    done = await trio.to_thread.run_sync(
        lambda: cli(tmp_path, "verify-receipt", *args, "--allow-demo")
    )
    return done.returncode, done.stdout


async def test_real_receipts_verify_and_forgeries_fail(
    upstream: FakeUpstream, gateway: Gateway, tmp_path: Path
) -> None:
    secret = await gateway.create_key()
    aud = ("--audience", gateway.settings.audience)  # served on an ephemeral port
    on_gateway = ("--gateway", gateway.url, *aud)
    document, body = await chat(gateway, secret, "chain-a")  # fake answers 503: fallback
    receipt_file, body_file = write(tmp_path, "r.json", document), write(tmp_path, "b", body)
    code, out = await verify_receipt(tmp_path, receipt_file, "--response", body_file, *on_gateway)
    assert code == 0, out
    assert out.strip().endswith("VERIFIED")
    assert "attempt 1: fake / chain-a" in out and "attempt 2: fake2 / chain-b" in out
    assert [a["provider"] for a in document["receipt"]["attempts"]] == ["fake", "fake2"]

    flipped = write(tmp_path, "flipped", bytes([body[0] ^ 0x01]) + body[1:])
    code, out = await verify_receipt(tmp_path, receipt_file, "--response", flipped, *on_gateway)
    assert code == 1 and "✗ (6) response" in out

    tampered = json.loads(json.dumps(document))
    tampered["inclusion_proof"] = tampered["inclusion_proof"] or ["00" * 32]
    tampered["inclusion_proof"][0] = "ff" * 32
    code, out = await verify_receipt(tmp_path, write(tmp_path, "t.json", tampered), *on_gateway)
    assert code == 1 and "✗ (4) inclusion" in out

    # a stream's receipt covers every byte of it, [DONE] included
    document, body = await stream(gateway, secret, "chain-b")
    assert body.endswith(b"data: [DONE]\n\n")
    streamed = write(tmp_path, "s.json", document)
    code, out = await verify_receipt(
        tmp_path, streamed, "--response", write(tmp_path, "sb", body), *on_gateway
    )
    assert code == 0, out

    # offline: what `verify --state` saved is the identity to trust
    state = str(tmp_path / "state.json")
    done = await trio.to_thread.run_sync(
        lambda: cli(tmp_path, "verify", gateway.url, "--state", state, "--allow-demo", *aud)
    )
    assert done.returncode == 0, done.stdout
    code, out = await verify_receipt(tmp_path, streamed, "--state", state)
    assert code == 0, out


async def test_a_receipt_from_another_gateway_fails(
    upstream: FakeUpstream, gateway: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other_settings = gateway_settings(tmp_path / "other", upstream.url)
    async with running_gateway(other_settings) as other:
        secret = await other.create_key()
        document, _ = await chat(other, secret, "chain-b")
    receipt_file = write(tmp_path, "other.json", document)
    code, out = await verify_receipt(
        tmp_path, receipt_file, "--gateway", gateway.url, "--audience", gateway.settings.audience
    )
    assert code == 1 and "✗ (3) identity" in out and "another gateway" in out
