"""The floor: the least a quart-trio + httpx gateway can do — one route that forwards the
client's body to the upstream and relays the answer, nothing else (no auth, no parse, no
billing, no logs).

bench/run.py measures it beside SafeRouter in the same run, because the machines these
benches run on change speed several-fold from day to day: a figure divided by the floor's
from the same minutes says what SafeRouter's own code costs on top of its stack, which an
absolute figure cannot. So it must stay the floor — served by hypercorn's trio worker
with the gateway's settings (keep-alive, backlog), a pooled `httpx.AsyncClient` with the
gateway's pool limits, streams relayed with `aiter_raw` — and add nothing.

It forwards every POST under /v1/ to the same path under the upstream's base URL (chat
completions, Anthropic's /v1/messages, OpenAI's /v1/responses), so each API the gateway
speaks has a floor of its own in the same run (bench/apis.py).

Usage: python bench/floor_app.py PORT UPSTREAM_BASE_URL   (e.g. http://127.0.0.1:9100/v1)
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from functools import partial

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

# the same values as saferouter's Settings defaults and hypercorn_config()
POOL_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# the upstream's headers a client needs; hop-by-hop ones (transfer-encoding…) are not relayed
RELAYED_HEADERS = ("content-type", "cache-control")


def create_floor_app(upstream_base_url: str) -> QuartTrio:
    """The proxy: POST /v1/<path> forwarded to ``upstream_base_url``/<path>."""
    app = QuartTrio("floor", static_folder=None)
    # Quart's 60 s default would cut long streams (stack-spike.md, pitfall 1)
    app.config["RESPONSE_TIMEOUT"] = None
    base_url = upstream_base_url.rstrip("/")
    clients: list[httpx.AsyncClient] = []

    @app.before_serving
    async def open_client() -> None:
        # made inside the trio loop that serves, and closed with it
        clients.append(httpx.AsyncClient(limits=POOL_LIMITS, timeout=TIMEOUT))

    @app.after_serving
    async def close_client() -> None:
        await clients.pop().aclose()

    @app.post("/v1/<path:rest>")
    async def forward(rest: str) -> Response:
        body = await request.get_data(cache=False)
        upstream = await clients[0].send(
            clients[0].build_request(
                "POST",
                f"{base_url}/{rest}",
                content=body,
                headers={"content-type": "application/json"},
            ),
            stream=True,
        )
        headers = {k: v for k, v in upstream.headers.items() if k in RELAYED_HEADERS}
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                data = await upstream.aread()
            finally:
                await upstream.aclose()
            return Response(data, status=upstream.status_code, headers=headers)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                # a client gone mid-stream cancels us: still close the upstream
                with trio.CancelScope(shield=True):
                    await upstream.aclose()

        response = Response(relay(), status=upstream.status_code, headers=headers)
        response.timeout = None
        return response

    return app


def hypercorn_config(port: int) -> Config:
    """What saferouter.server.hypercorn_config sets, on 127.0.0.1:``port``."""
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 10.0
    config.keep_alive_timeout = 75.0
    config.backlog = 1024
    return config


async def until_signalled() -> None:
    """Return at the first SIGINT or SIGTERM: hypercorn's trigger for a graceful stop."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def main(argv: list[str]) -> None:
    """``floor_app.py PORT UPSTREAM_BASE_URL``: serve the floor in this process."""
    port, upstream = int(argv[0]), argv[1]
    app, config = create_floor_app(upstream), hypercorn_config(port)
    trio.run(partial(serve, app, config, shutdown_trigger=until_signalled))


if __name__ == "__main__":
    main(sys.argv[1:])
