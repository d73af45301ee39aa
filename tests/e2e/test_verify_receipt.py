"""`saferouter verify-receipt` on real receipts from a live gateway (real fake upstream,
the real openai SDK as the client), and on each way one can be forged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import trio

from ..processes import Served, cli, new_key, serving
from ..servers import FakeUpstream, write_catalog

MESSAGES = [{"role": "user", "content": "a prompt"}]


@asynccontextmanager
async def served_gateway(folder: Path, upstream: FakeUpstream) -> AsyncIterator[Served]:
    """`saferouter serve` (a startup entry, an audience that is its URL) routing to the
    fake upstream; entered and left in a thread, since the upstream runs in this loop."""
    folder.mkdir(exist_ok=True)
    catalog = write_catalog(folder / "catalog.toml", upstream.url)
    running = serving(folder / "data", "--config", str(catalog), env={"FAKE_API_KEY": "sk-up"})
    served = await trio.to_thread.run_sync(running.__enter__)
    try:
        yield served
    finally:
        await trio.to_thread.run_sync(running.__exit__, None, None, None)


async def user_key(served: Served, folder: Path) -> str:
    return await trio.to_thread.run_sync(new_key, folder / "data", "--name", "user")


async def receipt_of(gateway: Served, secret: str, receipt_id: str) -> dict[str, Any]:
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


async def chat(gateway: Served, secret: str, model: str) -> tuple[dict[str, Any], bytes]:
    """One chat through the openai SDK: the receipt document and the exact body bytes."""
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=secret, max_retries=0
    ) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        body = raw.http_response.content
    return await receipt_of(gateway, secret, raw.headers["x-saferouter-receipt"]), body


async def stream(gateway: Served, secret: str, model: str) -> tuple[dict[str, Any], bytes]:
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
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    async with served_gateway(tmp_path / "gw", upstream) as gateway:
        secret = await user_key(gateway, tmp_path / "gw")
        on_gateway = ("--gateway", gateway.url)
        document, body = await chat(gateway, secret, "chain-a")  # 503 upstream: fallback
        receipt_file, body_file = write(tmp_path, "r.json", document), write(tmp_path, "b", body)
        code, out = await verify_receipt(
            tmp_path, receipt_file, "--response", body_file, *on_gateway
        )
        assert code == 0, out
        assert out.strip().endswith("VERIFIED")
        assert "attempt 1: fake / chain-a" in out and "attempt 2: fake2 / chain-b" in out
        assert [a["provider"] for a in document["receipt"]["attempts"]] == ["fake", "fake2"]

        flipped = write(tmp_path, "flipped", bytes([body[0] ^ 0x01]) + body[1:])
        code, out = await verify_receipt(tmp_path, receipt_file, "--response", flipped, *on_gateway)
        assert code == 1 and "✗ (6) response" in out

        # a stream's receipt covers every byte of it, [DONE] included
        document, body = await stream(gateway, secret, "chain-b")
        assert body.endswith(b"data: [DONE]\n\n")
        streamed = write(tmp_path, "s.json", document)
        code, out = await verify_receipt(
            tmp_path, streamed, "--response", write(tmp_path, "sb", body), *on_gateway
        )
        assert code == 0, out

        tampered = json.loads(json.dumps(document))
        assert tampered["inclusion_proof"], "a tree of two receipts has a proof"
        tampered["inclusion_proof"][0] = "ff" * 32
        tampered_file = write(tmp_path, "t.json", tampered)
        code, out = await verify_receipt(tmp_path, tampered_file, *on_gateway)
        assert code == 1 and "✗ (4) inclusion" in out

        # offline: what `verify --state` saved is the identity to trust
        state = str(tmp_path / "state.json")
        done = await trio.to_thread.run_sync(
            lambda: cli(tmp_path, "verify", gateway.url, "--state", state, "--allow-demo")
        )
        assert done.returncode == 0, done.stdout
        code, out = await verify_receipt(tmp_path, streamed, "--state", state)
        assert code == 0, out


async def test_a_receipt_from_another_gateway_fails(upstream: FakeUpstream, tmp_path: Path) -> None:
    async with served_gateway(tmp_path / "other", upstream) as other:
        document, _ = await chat(other, await user_key(other, tmp_path / "other"), "chain-b")
    receipt_file = write(tmp_path, "other.json", document)
    async with served_gateway(tmp_path / "gw", upstream) as gateway:
        code, out = await verify_receipt(tmp_path, receipt_file, "--gateway", gateway.url)
    assert code == 1 and "✗ (3) identity" in out and "another gateway" in out
