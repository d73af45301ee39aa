"""Real servers for tests: hypercorn on 127.0.0.1:0, a fake OpenAI-compatible upstream,
and a gateway wired to it.

The fake upstream is a real HTTP server. What it does is chosen by the upstream model
name the gateway sends it (the catalog's prefix routing passes ``fake/<name>`` through
as ``<name>``):

* ``replay:<path>[@seed]`` — a recording from ../shared/testdata/recordings, sent in
  randomly sized pieces (seeded) with a flush between them;
* ``file:<path>`` — a non-streaming recording's bytes as the JSON body;
* ``status:<code>:<errors/file>`` or ``status:<code>`` — an error status with that
  recorded body (served with the recorded content type) or a generic one;
* ``echo`` — a JSON body describing the request received (body, headers);
* ``leak:<code>`` — an error status whose JSON (message, code, param), plain text and
  headers (``WWW-Authenticate``, ``Location``, ``Retry-After``) quote the request's
  ``Authorization`` header back; ``leak:stream`` — a stream
  whose in-band error event quotes it, and whose answer text and usage hold the bare key;
* ``slow:<n>:<interval_ms>`` — n chunks spaced out; records ``cancelled`` if the gateway
  hangs up first;
* ``delay:<ms>`` — after a pause, a small completion (or a 3-chunk stream with a
  usage chunk) whose usage spends all the request allowed: its larger token limit for
  each of its ``n`` choices;
* ``usage:<tokens>`` — a small completion reporting that many completion tokens,
  whatever the request allowed (a provider overrunning ``max_tokens``);
* ``hang`` — no answer at all; ``stall:<n>`` — n chunks, then silence;
* ``gate:<name>`` — a chunk, then silence until the test opens the gate
  (``FakeUpstream.gate(name).set()``), then the end of a normal stream;
* ``busy`` (429, no Retry-After), ``zai1113`` / ``zai1302`` / ``zai1305`` (Z.AI's 429
  business codes), ``blanks`` (blank lines / keep-alives first), ``malformed`` (a data
  line that is not JSON), ``oversized-first`` / ``oversized-mid`` (a 5 MiB SSE line),
  ``badjson`` (a 200 body that is not JSON), ``html`` (a 200 HTML page) — see FAULTS;
* ``ratelimit:<n>:<s>`` — the first n requests naming it get a 429 with
  ``Retry-After: <s>``, the next ones a small completion;
* ``slowstart:<ms>`` — like ``delay``; a pause cut short by the gateway is recorded as
  ``cancelled:slowstart`` (``cancelled:delay`` for delay);
* any other name — a small chat completion naming that model.

Whatever the name, a request whose bearer key is in ``FakeUpstream.refused_keys`` gets a
401 quoting its ``Authorization`` back (a provider refusing a key, carelessly).
"""

from __future__ import annotations

import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from saferouter.app import create_app
from saferouter.catalog import Price
from saferouter.config import Settings, Timeouts, load_settings
from saferouter.keys import generate_key
from saferouter.state import EXTENSION, AppState
from saferouter.storage.sqlite import SQLiteStore

from .fake_messages import add_messages_routes
from .recordings import RECORDINGS, entry, stream_bytes
from .responses_upstream import responses_route


@asynccontextmanager
async def running_server(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral port; yields its base URL. Shut down gracefully
    (cancelling ``serve`` would skip ``after_serving`` and leak sockets)."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    config.backlog = 1024
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=shutdown.wait))
        try:
            yield binds[0]
        finally:
            shutdown.set()


@attrs.define
class FakeUpstream:
    url: str = ""
    requests: list[dict[str, Any]] = attrs.Factory(list)
    events: list[str] = attrs.Factory(list)
    refused_keys: set[str] = attrs.Factory(set)  # bearer keys answered with a 401
    gates: dict[str, trio.Event] = attrs.Factory(dict)

    def gate(self, name: str) -> trio.Event:
        """What ``gate:<name>`` streams wait for."""
        return self.gates.setdefault(name, trio.Event())


def make_fake_upstream(state: FakeUpstream) -> QuartTrio:
    app = QuartTrio("fake_upstream", static_folder=None)
    app.config["RESPONSE_TIMEOUT"] = None
    add_messages_routes(app, state)  # /v1/messages: tests/fake_messages.py
    responses_route(app, state)  # POST /v1/responses: tests/responses_upstream.py

    @app.post("/v1/chat/completions")
    async def chat() -> Response:
        raw = await request.get_data(cache=False)
        body = json.loads(raw)
        state.requests.append({"body": body, "raw": raw, "headers": dict(request.headers)})
        mode, _, arg = str(body["model"]).partition(":")
        authorization = request.headers.get("Authorization", "")
        if authorization.removeprefix("Bearer ") in state.refused_keys:
            return _leak("401", authorization)
        if mode == "replay":
            path, _, seed = arg.partition("@")
            return _replay(stream_bytes(path), int(seed or 0))
        if mode == "file":
            assert RECORDINGS is not None
            return Response((RECORDINGS / arg).read_bytes(), content_type="application/json")
        if mode == "status":
            return _status(arg)
        if mode == "leak":
            return _leak(arg, request.headers.get("Authorization", ""))
        if mode == "echo":
            return Response(
                json.dumps({"received": body, "headers": dict(request.headers)}),
                content_type="application/json",
            )
        if mode == "slow":
            count, _, interval = arg.partition(":")
            return _slow(state, int(count), int(interval) / 1000)
        if mode in ("delay", "slowstart"):
            try:
                await trio.sleep(int(arg) / 1000)
            except trio.Cancelled:
                state.events.append(f"cancelled:{mode}")
                raise
            # spend what the request allowed: its larger token limit, for each of n choices
            limit = max(body.get("max_tokens") or 0, body.get("max_completion_tokens") or 0)
            usage = {**USAGE, "completion_tokens": (limit or 2) * body.get("n", 1)}
            if body.get("stream"):
                return _slow(state, 3, 0.0, usage=usage)
            return Response(
                json.dumps({**_completion(str(body["model"])), "usage": usage}),
                content_type="application/json",
            )
        if mode == "usage":
            usage = {**USAGE, "completion_tokens": int(arg)}
            return Response(
                json.dumps({**_completion(str(body["model"])), "usage": usage}),
                content_type="application/json",
            )
        if mode in FAULTS:
            return FAULTS[mode](body)
        if mode == "ratelimit":
            limit, _, retry_after_s = arg.partition(":")
            if sum(r["body"]["model"] == body["model"] for r in state.requests) <= int(limit):
                return Response(
                    b"{}",
                    status=429,
                    content_type="application/json",
                    headers={"Retry-After": retry_after_s},
                )
        if mode == "hang":
            await trio.sleep_forever()
        if mode == "stall":
            return _slow(state, int(arg), 0.0, then_stall=True)
        if mode == "gate":
            return _slow(state, 1, 0.0, then_wait=state.gate(arg), usage=USAGE)
        return Response(
            json.dumps(_completion(str(body["model"]))), content_type="application/json"
        )

    return app


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def _sse(*events: bytes) -> Response:
    response = Response(b"".join(events), content_type="text/event-stream")
    response.timeout = None
    return response


def _chunk(text: str) -> bytes:
    return (
        b"data: "
        + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()
        + b"\n\n"
    )


_USAGE_EVENT = b"data: " + json.dumps({"choices": [], "usage": USAGE}).encode() + b"\n\n"
_DONE = b"data: [DONE]\n\n"
_HUGE = b"data: " + b"x" * (5 * 1024 * 1024) + b"\n\n"


def _zai(code: str) -> Response:
    body = {"error": {"code": code, "message": f"Z.AI business code {code}"}}
    return Response(json.dumps(body), status=429, content_type="application/json")


def _blank_lines(body: dict[str, Any]) -> Response:
    """DeepSeek under load: blank lines (non-stream) or keep-alive comments first."""
    if body.get("stream"):
        return _sse(b": keep-alive\n\n: keep-alive\n\n", _chunk("late"), _USAGE_EVENT, _DONE)
    return Response(
        b"\n\n\n" + json.dumps(_completion(str(body["model"]))).encode(),
        content_type="application/json",
    )


FAULTS: dict[str, Any] = {
    "busy": lambda body: _status("429", no_retry_after=True),
    "zai1113": lambda body: _zai("1113"),
    "zai1302": lambda body: _zai("1302"),
    "zai1305": lambda body: _zai("1305"),
    "blanks": _blank_lines,
    "malformed": lambda body: _sse(b"data: {not json\n\n", _chunk("ok"), _USAGE_EVENT, _DONE),
    "oversized-first": lambda body: _sse(_HUGE, _DONE),
    "oversized-mid": lambda body: _sse(_chunk("before"), _HUGE, _DONE),
    "badjson": lambda body: Response(b'{"id": "x", "choices": [', content_type="application/json"),
    "html": lambda body: Response(
        b"<html><body>Bad gateway</body></html>", content_type="text/html"
    ),
}


def _leak(arg: str, authorization: str) -> Response:
    """A careless provider (or the proxy in front of it) quoting the credentials."""
    key = authorization.removeprefix("Bearer ")
    if arg == "stream":
        error = {"error": {"message": f"denied for {authorization}", "code": key}}
        usage = {"choices": [], "usage": {**USAGE, "billed_to": key}}
        return _sse(
            _chunk(f"the key is {key}"),
            b"data: " + json.dumps(usage).encode() + b"\n\n",
            b"data: " + json.dumps(error).encode() + b"\n\n",
        )
    body = {
        "error": {
            "message": f"Invalid request. Headers: Authorization: {authorization}; key={key}",
            "type": "invalid_request_error",
            "code": f"bad_key_{key}",
            "param": key,
        },
        "debug": f"{authorization} as text: {key}",
    }
    # and in the headers a provider or its proxy may set: none may reach a client
    headers = {
        "WWW-Authenticate": f'Bearer error="invalid_token", token="{key}"',
        "Location": f"https://provider.invalid/login?key={key}",
        "Retry-After": key,
    }
    return Response(
        json.dumps(body), status=int(arg), content_type="application/json", headers=headers
    )


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "fake-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "fake answer"},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _replay(data: bytes, seed: int) -> Response:
    rng = random.Random(seed)

    async def pieces() -> AsyncIterator[bytes]:
        at = 0
        while at < len(data):
            size = rng.choice([1, 2, 3, 7, 16, 64, 300, 1500, 4096])
            yield data[at : at + size]
            at += size
            await trio.sleep(0)

    response = Response(pieces(), content_type="text/event-stream")
    response.timeout = None
    return response


def _status(arg: str, *, no_retry_after: bool = False) -> Response:
    code_text, _, path = arg.partition(":")
    code = int(code_text)
    if path:
        assert RECORDINGS is not None
        headers = entry(path).get("response_headers") or {}
        content_type = (headers.get("content-type") or ["application/json"])[0]
        body = (RECORDINGS / path).read_bytes()
    else:
        content_type = "application/json"
        body = json.dumps(
            {"error": {"message": f"fake failure {code}", "type": "server_error", "code": None}}
        ).encode()
    extra = {"Retry-After": "7"} if code == 429 and not no_retry_after else {}
    return Response(body, status=code, content_type=content_type, headers=extra)


def _slow(
    state: FakeUpstream,
    count: int,
    interval_s: float,
    *,
    then_stall: bool = False,
    then_wait: trio.Event | None = None,
    usage: dict[str, int] | None = None,
) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            for i in range(count):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"{i} "}}]}
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                await trio.sleep(interval_s)
            if then_stall:
                await trio.sleep_forever()
            if then_wait is not None:
                await then_wait.wait()
            if usage:
                yield b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        except trio.Cancelled:
            state.events.append("cancelled")
            raise

    response = Response(chunks(), content_type="text/event-stream")
    response.timeout = None
    return response


@asynccontextmanager
async def raw_upstream() -> AsyncIterator[FakeUpstream]:
    """A bare TCP server that breaks HTTP on purpose; the model name says how:
    ``reset`` — a TCP reset before any header; ``reset-mid`` — headers and two events,
    then a reset."""
    state = FakeUpstream()

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += await stream.receive_some(65536)
        model = json.loads(body)["model"]
        state.requests.append({"body": json.loads(body)})
        if model == "reset-mid":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for text in ("one ", "two "):
                event = _chunk(text)
                await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
            await trio.sleep(0.05)
        # SO_LINGER 0: close with a TCP reset, not a polite FIN
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()

    async with tcp_server(handle) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


@asynccontextmanager
async def tcp_server(
    handle: Callable[[trio.SocketStream], Awaitable[None]],
) -> AsyncIterator[int]:
    """Serve raw TCP on 127.0.0.1:0, each connection to ``handle``; yields the port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        try:
            yield listeners[0].socket.getsockname()[1]
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    state = FakeUpstream()
    async with running_server(make_fake_upstream(state)) as url:
        state.url = url
        yield state


def write_catalog(
    path: Path, upstream_url: str, *, demo_delay_ms: int = 0, raw_url: str | None = None
) -> Path:
    """The shipped catalog plus a `fake` provider (prefix-routed, any model name), a
    second one `fake2` at the same server (both serving every API: chat and responses
    under `{upstream_url}/v1`, messages at `{upstream_url}/v1/messages`), listed models
    with fallback chains over them (`chain-*`, `hedged`), and, given ``raw_url``, a `raw`
    provider there."""
    from saferouter.catalog import DEFAULT_CATALOG_PATH

    text = DEFAULT_CATALOG_PATH.read_text().replace(
        "demo_chunk_delay_ms = 25", f"demo_chunk_delay_ms = {demo_delay_ms}"
    )
    text += f"""
[providers.fake]
name = "Fake upstream"
base_url = "{upstream_url}/v1"
api_key_env = "FAKE_API_KEY"
apis = ["chat", "responses", "messages"]
anthropic_base_url = "{upstream_url}"
default_price = {{ input = "1.25", cached_input = "0.125", output = "10" }}

[providers.fake2]
name = "Fake upstream two"
base_url = "{upstream_url}/v1"
api_key_env = "FAKE_API_KEY"
apis = ["chat", "responses", "messages"]
anthropic_base_url = "{upstream_url}"
default_price = {{ input = "2.5", cached_input = "0.25", output = "20" }}

[[models]]
id = "chain-a"
provider = "fake"
upstream = "status:503"
context_length = 1000
max_output = 100
price = {{ input = "1.25", output = "10" }}
fallbacks = ["chain-b"]

[[models]]
id = "chain-b"
provider = "fake2"
upstream = "delay:0"
context_length = 1000
max_output = 100
price = {{ input = "2.5", output = "20" }}

[[models]]
id = "hedged"
provider = "fake"
upstream = "slowstart:3000"
context_length = 1000
max_output = 100
hedge_after_ms = 150
price = {{ input = "1.25", output = "10" }}
fallbacks = ["chain-b"]
"""
    if raw_url is not None:
        text += f"""
[providers.raw]
name = "Raw socket upstream"
base_url = "{raw_url}/v1"
default_price = {{ input = "1", output = "1" }}
"""
    path.write_text(text)
    return path


FAKE_PRICE = Price(input=1_250_000, cached_input=125_000, output=10_000_000)


@attrs.define
class Gateway:
    url: str
    settings: Settings
    store: SQLiteStore
    admin_key: str
    state: AppState | None = None  # the in-process app's (its observers, say)

    async def create_key(self, name: str = "user", role: str = "user", **options: Any) -> str:
        new = generate_key()
        await self.store.create_key(
            name=name, role=role, key_hash=new.hash, prefix=new.display_prefix, **options
        )
        return new.secret


def gateway_settings(
    tmp_path: Path, upstream_url: str, *, raw_url: str | None = None, **env: str
) -> Settings:
    catalog = write_catalog(tmp_path / "catalog.toml", upstream_url, raw_url=raw_url)
    environ = {"FAKE_API_KEY": "sk-upstream-secret-1234", **env}
    return load_settings(environ, config=catalog, data_dir=tmp_path / "data")


@asynccontextmanager
async def running_gateway(
    settings: Settings, *, timeouts: Timeouts | None = None
) -> AsyncIterator[Gateway]:
    if timeouts is not None:
        settings = attrs.evolve(settings, timeouts=timeouts)
    store = SQLiteStore(settings.data_dir / "saferouter.db")
    new = generate_key()
    await store.create_key(name="admin", role="admin", key_hash=new.hash, prefix=new.display_prefix)
    app = create_app(settings, store=store)
    async with running_server(app) as url:
        yield Gateway(
            url=url,
            settings=settings,
            store=store,
            admin_key=new.secret,
            state=app.extensions[EXTENSION],
        )
