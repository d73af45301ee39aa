"""Issue 10 #7: a client that stops reading its stream is cut off after the send timeout;
its upstream is closed and what was relayed is billed (``client_stalled``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import trio

from ..servers import FakeUpstream, gateway_settings, running_gateway
from .test_billing import last_activity

SEND_TIMEOUT_S = 1


def _request(key: str, body: dict[str, object]) -> bytes:
    raw = json.dumps(body).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (key.encode(), len(raw), raw)
    )


async def test_a_client_that_never_reads_is_cut_off_and_billed(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    settings = gateway_settings(
        tmp_path, upstream.url, SAFEROUTER_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S)
    )
    async with running_gateway(settings) as gateway:
        key = await gateway.create_key(credits_micro_usd=10_000_000)
        host, port = gateway.url.removeprefix("http://").split(":")
        with trio.socket.socket() as sock:
            # a receive buffer of a few KiB that is never read: the gateway's writes stall
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            await sock.connect((host, int(port)))
            body = {
                "model": "fake/slow:100000000:0",  # streams as fast as it is taken, ~forever
                "stream": True,
                "messages": [{"role": "user", "content": "never read"}],
            }
            await sock.send(_request(key, body))
            # the upstream sees the gateway hang up: once the buffers are full, within the
            # send timeout (the bound is generous for a loaded machine)
            with trio.fail_after(60):
                while "cancelled" not in upstream.events:
                    await trio.sleep(0.05)
            activity = await last_activity(gateway, key)
            # and the gateway closed the client's connection: what it had sent, then the end
            with trio.fail_after(30):
                try:
                    while await sock.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
        assert activity["outcome"] == "client_stalled" and activity["status"] == 499
        assert activity["error_type"] == "client_send_timeout"
        # no usage event got through: the text relayed is billed as an estimate
        assert activity["estimated"] is True
        assert activity["completion_tokens"] > 0 and activity["cost_micro_usd"] > 0  # type: ignore[operator]
        assert await gateway.store.check_books() == []
        books = await gateway.store.books((await gateway.store.list_keys())[-1].id)
        assert books.reserved_micro_usd == 0
        assert books.spent_micro_usd == activity["cost_micro_usd"]
