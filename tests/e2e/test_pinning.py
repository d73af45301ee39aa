"""The pinned transports of ``saferouter.verify.channel`` against a real TLS server (the
TLS-terminating proxy of tests/tls_proxy.py in front of a real fake upstream): the
attested key gets requests through, any other key is refused before a byte is sent."""

from __future__ import annotations

import httpx
import pytest
import trio

from saferouter.verify.channel import (
    TLSKeyMismatch,
    async_pinned_transport,
    pinned_transport,
)

from ..servers import FakeUpstream
from ..tls_proxy import tls_terminating_proxy

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "a secret prompt"}]}
OTHER_KEY = "ab" * 32


def post(url: str, pin: str) -> httpx.Response:
    with httpx.Client(transport=pinned_transport(pin), timeout=30) as client:
        return client.post(url + "/v1/chat/completions", json=CHAT)


async def test_the_pinned_key_gets_through(upstream: FakeUpstream) -> None:
    async with tls_terminating_proxy(upstream.url) as proxy:
        response = await trio.to_thread.run_sync(post, proxy.url, proxy.spki_sha256)
        async with httpx.AsyncClient(
            transport=async_pinned_transport(proxy.spki_sha256), timeout=30
        ) as client:
            second = await client.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert response.status_code == 200 and second.status_code == 200
    assert response.json()["received"] == CHAT
    assert len(upstream.requests) == 2


async def test_another_key_is_refused_before_a_byte_is_sent(upstream: FakeUpstream) -> None:
    async with tls_terminating_proxy(upstream.url) as proxy:
        with pytest.raises(TLSKeyMismatch, match="not the attested key"):
            await trio.to_thread.run_sync(post, proxy.url, OTHER_KEY)
        async with httpx.AsyncClient(
            transport=async_pinned_transport(OTHER_KEY), timeout=30
        ) as client:
            with pytest.raises(TLSKeyMismatch, match="nothing was sent"):
                await client.post(proxy.url + "/v1/chat/completions", json=CHAT)
        with trio.fail_after(10):  # the handshakes did happen: the refusal came after
            while proxy.handshakes < 2:
                await trio.sleep(0.01)
    assert proxy.bytes_from_clients == 0 and proxy.target_connections == 0
    assert upstream.requests == []


async def test_plain_http_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(TLSKeyMismatch, match="only over TLS"):
        await trio.to_thread.run_sync(post, upstream.url, OTHER_KEY)
    async with httpx.AsyncClient(transport=async_pinned_transport(OTHER_KEY)) as client:
        with pytest.raises(TLSKeyMismatch, match="only over TLS"):
            await client.post(upstream.url + "/v1/chat/completions", json=CHAT)
    assert upstream.requests == []
