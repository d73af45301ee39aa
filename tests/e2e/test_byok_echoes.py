"""A provider that echoes the key it was sent everywhere it can (attack on issue 13 §5):
in its error's JSON and text and in the headers a provider or its proxy may set
(``WWW-Authenticate``, ``Location``, ``Retry-After``), for every error status the
gateway passes on or maps. Neither the client's own key nor the operator's may reach
the client's response — body or headers, stream or not — nor the server's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from ..processes import new_key
from .test_byok_use import OPERATOR, bearer, byok_gateway, canary, upload

STATUSES = (400, 404, 422, 429, 500, 503)


async def test_no_echo_of_either_key_reaches_a_client(tmp_path: Path) -> None:
    own = canary()
    needles = (own, own.removeprefix("sk-canary-"), OPERATOR)
    leaks: list[str] = []
    async with byok_gateway(tmp_path) as (upstream, data, start):
        user = new_key(data, "--name", "own key")
        other = new_key(data, "--name", "operator's key")
        with start() as served:
            await upload(served.url, user, own)
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                for key in (user, other):
                    for status in STATUSES:
                        for stream in (False, True):
                            body = {
                                "model": f"fake/leak:{status}",
                                "stream": stream,
                                "messages": [{"role": "user", "content": "hi"}],
                            }
                            response = await client.post(
                                "/v1/chat/completions", json=body, headers=bearer(key)
                            )
                            assert response.status_code >= 400
                            assert set(response.json()["error"]) == {
                                "message",
                                "type",
                                "param",
                                "code",
                            }
                            seen = response.text + json.dumps(list(response.headers.items()))
                            leaks += [f"{status} {stream}" for n in needles if n in seen]
        sent = {r["headers"].get("Authorization") for r in upstream.requests}
        assert sent == {f"Bearer {own}", f"Bearer {OPERATOR}"}  # both keys were echoed
    assert leaks == []
    assert not any(n in served.output for n in needles)
