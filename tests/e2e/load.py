"""Load on a gateway while something happens to it (a SIGKILL): clients looping on
requests, and what each of them saw complete."""

from __future__ import annotations

import json
import random

import httpx
import trio


def chat_body(model: str, *, stream: bool = False) -> dict[str, object]:
    """A small chat request: one message, at most 10 tokens."""
    return {
        "model": model,
        "stream": stream,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
    }


async def one_request(
    client: httpx.AsyncClient, rng: random.Random, secrets: list[str]
) -> tuple[bool, httpx.Response, bytes]:
    """One request of the loops' mix (half of them streams, each answered after 0-40
    ms, on a key of ``secrets``): whether it streamed, the response and its payload."""
    stream = rng.random() < 0.5
    body = chat_body(f"fake/delay:{rng.randint(0, 40)}", stream=stream)
    headers = {"Authorization": f"Bearer {rng.choice(secrets)}"}
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers=headers
    ) as response:
        return stream, response, await response.aread()


class Load:
    """Clients looping on a gateway with keys ``secrets``; what they saw complete, by
    request id (a body whole, a stream through its ``[DONE]``)."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.completed: set[str] = set()

    async def loop(self, url: str, seed: int, stop: trio.Event | None = None) -> None:
        """Requests (half of them streams, each answered after 0-40 ms) until ``stop``
        or the gateway is gone."""
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while stop is None or not stop.is_set():
                try:
                    stream, response, payload = await one_request(client, rng, self.secrets)
                except httpx.TransportError:
                    return  # the gateway is gone
                request_id = response.headers["x-saferouter-request-id"]
                assert response.status_code == 200, payload
                if not stream:
                    json.loads(payload)  # a whole body
                    self.completed.add(request_id)
                elif payload.endswith(b"data: [DONE]\n\n"):
                    self.completed.add(request_id)
