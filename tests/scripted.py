"""An in-process upstream for pipeline tests under trio's ``MockClock``.

It implements httpcore's transport interface, so the gateway reaches it through the
same code as a real provider (``Upstreams(settings, transports=...)``); it only differs
from ``tests/servers.py``'s fake upstream in having no socket, so that every wait in it
is a ``trio.sleep`` on the mock clock and a test of a 120 s timeout takes no time.

The script is the model's upstream name, as for the fake upstream:
``ok`` · ``status:<code>`` · ``ratelimit:<retry after s>`` (always 429) ·
``slowstart:<ms>`` (wait, then answer) · ``slow:<chunks>:<ms between>`` (stream) ·
``stall:<chunks>`` (stream, then silence) · ``nousage`` (a stream without usage).
Whatever the script, a request whose key is in ``refused_keys`` gets a 401 whose body
quotes its ``Authorization`` back (a careless provider); ``authorizations`` records the
header of every request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpcore
import trio

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@attrs.define
class ScriptedUpstream:
    requests: list[dict[str, Any]] = attrs.Factory(list)  # the bodies received, parsed
    targets: list[bytes] = attrs.Factory(list)  # the URL each was sent to
    authorizations: list[str] = attrs.Factory(list)  # their Authorization headers
    refused_keys: set[str] = attrs.Factory(set)  # provider keys answered with a 401
    raw: list[bytes] = attrs.Factory(list)
    opened: int = 0  # responses handed out
    closed: int = 0  # ... and closed by the gateway
    cancelled: int = 0  # requests cancelled while the upstream was still working

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        raw = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        body = json.loads(raw)
        self.raw.append(raw)
        self.targets.append(bytes(request.url))
        self.requests.append(body)
        authorization = next(
            (v.decode() for k, v in request.headers if k.lower() == b"authorization"), ""
        )
        self.authorizations.append(authorization)
        if authorization.removeprefix("Bearer ") in self.refused_keys:
            echo = {"error": {"message": f"invalid key {authorization}", "code": "auth"}}
            return self._response(401, json.dumps(echo).encode())
        mode, _, arg = str(body["model"]).partition(":")
        stream = bool(body.get("stream"))
        try:
            if mode == "slowstart":
                await trio.sleep(int(arg) / 1000)
        except trio.Cancelled:
            self.cancelled += 1
            raise
        if mode == "status":
            return self._response(int(arg), _error_body(int(arg)))
        if mode == "ratelimit":
            return self._response(429, b"{}", [(b"retry-after", arg.encode())])
        if not stream:
            return self._response(200, json.dumps(_completion(body)).encode())
        count, interval_s, stall = 3, 0.0, False
        if mode == "slow":
            chunks, _, ms = arg.partition(":")
            count, interval_s = int(chunks), int(ms) / 1000
        if mode == "stall":
            count, stall = int(arg), True
        events = _Events(self, count, interval_s, stall=stall, usage=mode != "nousage")
        self.opened += 1
        return httpcore.Response(
            200, headers=[(b"content-type", b"text/event-stream")], content=events
        )

    def _response(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> httpcore.Response:
        self.opened += 1
        return httpcore.Response(
            status,
            headers=[(b"content-type", b"application/json"), *(headers or [])],
            content=_Body(self, body),
        )

    async def aclose(self) -> None:
        return None


@attrs.define
class _Body:
    upstream: ScriptedUpstream
    data: bytes
    done: bool = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data

    async def aclose(self) -> None:
        if not self.done:  # closing twice is allowed, and counted once
            self.done = True
            self.upstream.closed += 1


@attrs.define
class _Events:
    upstream: ScriptedUpstream
    count: int
    interval_s: float
    stall: bool
    usage: bool
    done: bool = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(self.count):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"{i} "}}]}
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            await trio.sleep(self.interval_s)
        if self.stall:
            await trio.sleep_forever()
        if self.usage:
            yield b"data: " + json.dumps({"choices": [], "usage": USAGE}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        if not self.done:  # closing twice is allowed, and counted once
            self.done = True
            self.upstream.closed += 1


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": USAGE,
    }


def _error_body(status: int) -> bytes:
    error = {"message": f"scripted failure {status}", "type": "server_error", "code": None}
    return json.dumps({"error": error}).encode()
