"""One trace per request on the paths a client cuts short or gets wrong (attack16): a
client that leaves mid-stream, a body declared too big (413), a body that never
finishes, a preflight the gateway does not answer for CORS — and an observer that raises
changes no response and keeps no other observer from its trace. Raw sockets on a live
gateway (hypercorn in this process, the fake upstream)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import trio

from saferouter.observe import Observers, RequestTrace

from ..servers import Gateway
from .test_request_traces import Recorder, observed

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def connect(gateway: Gateway) -> trio.SocketStream:
    url = urlsplit(gateway.url)
    assert url.hostname is not None and url.port is not None
    return await trio.open_tcp_stream(url.hostname, url.port)


def post_head(gateway: Gateway, length: int) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {gateway.admin_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def only_trace(recorder: Recorder) -> RequestTrace:
    (trace,) = await recorder.wait_for(1)
    await trio.sleep(0.2)  # nothing more comes: one trace for the request
    assert len(recorder.traces) == 1
    return trace


async def test_a_client_leaving_mid_stream_is_traced_once(gateway: Gateway) -> None:
    recorder = observed(gateway)
    body = json.dumps(CHAT).encode()
    stream = await connect(gateway)
    await stream.send_all(post_head(gateway, len(body)) + body)
    received = b""
    with trio.fail_after(30):
        while b"data: " not in received:  # the stream has started
            received += await stream.receive_some()
    await stream.aclose()
    trace = await only_trace(recorder)
    assert (trace.route, trace.status) == ("/v1/chat/completions", 200)


async def test_a_body_declared_too_big_is_traced_once(gateway: Gateway) -> None:
    recorder = observed(gateway)
    stream = await connect(gateway)
    await stream.send_all(post_head(gateway, 1 << 40))
    with trio.fail_after(30):
        answer = await stream.receive_some()
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 413")
    trace = await only_trace(recorder)
    assert trace.status == 413


async def test_a_body_that_never_finishes_is_traced_once(gateway: Gateway) -> None:
    recorder = observed(gateway)
    stream = await connect(gateway)
    await stream.send_all(post_head(gateway, 1000) + b'{"model": "de')
    await trio.sleep(0.2)  # the request is in the app, waiting for the rest
    await stream.aclose()
    await only_trace(recorder)


async def test_a_preflight_without_cors_is_traced_once(gateway: Gateway) -> None:
    recorder = observed(gateway)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.options(
            "/v1/chat/completions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers
    assert response.json()["error"]["code"] == "method_not_allowed"
    trace = await only_trace(recorder)
    assert (trace.method, trace.status) == ("OPTIONS", 405)


class Raising:
    def request_done(self, trace: RequestTrace) -> None:
        raise RuntimeError("an exporter's bug")


async def test_an_observer_that_raises_changes_no_response(gateway: Gateway) -> None:
    assert gateway.state is not None
    recorder = Recorder()
    gateway.state.observers = Observers((Raising(), *gateway.state.observers.observers, recorder))
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        for _ in range(2):  # the connection after the failure serves on
            response = await client.post(
                "/v1/chat/completions", json={**CHAT, "stream": False}, headers=admin
            )
            assert response.status_code == 200, response.text
    traces = await recorder.wait_for(2)
    assert [t.status for t in traces] == [200, 200]
