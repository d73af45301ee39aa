"""Issue 17: answers given before the request body was read (401, 404, 405, 413) and a 400
on bad JSON, alternating with valid chats on ONE keep-alive connection, under CPU load —
every response arrives within 2 s, the connection is never dropped.

The cause was a hang: hypercorn finished such an exchange (closing the connection, as the
body was unread) inside the app's last ``send``, and quart-trio cancelled that very task
on the ``http.disconnect`` hypercorn had just delivered, cutting the close half-way.
Bodies go whole, split (headers first: the case that hung), chunked, and behind
``Expect: 100-continue``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

import httpx2
import openai
import pytest

from ..processes import Served, new_key, serving

ROUNDS = 200
WITHIN_S = 2.0
MAX_BODY_BYTES = 64 * 1024
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello"}]}
EARLY = ("401", "404", "405", "413", "400")
ENCODINGS = ("whole", "split", "chunked", "expect")
T = TypeVar("T")


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """A busy loop on every core, for the whole test."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    data = tmp_path_factory.mktemp("keepalive") / "data"
    key = new_key(data, "--name", "keepalive")
    env = {"SAFEROUTER_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    with serving(data, env=env) as gateway:
        yield gateway, key


def early_request(kind: str, key: str) -> tuple[str, str, str, bytes]:
    """(method, path, key, body) of a request answered without reading its body — or, for
    400, after reading a body that is not JSON."""
    chat = json.dumps(CHAT).encode()
    if kind == "401":
        return "POST", "/v1/chat/completions", "sk-sr-not-a-key-000000000000", chat
    if kind == "404":
        return "POST", "/v1/embeddings", key, json.dumps({"model": "demo", "input": "hi"}).encode()
    if kind == "405":
        return "POST", "/v1/models", key, chat
    if kind == "413":
        padded = {**CHAT, "messages": [{"role": "user", "content": "x" * MAX_BODY_BYTES}]}
        return "POST", "/v1/chat/completions", key, json.dumps(padded).encode()
    return "POST", "/v1/chat/completions", key, b'{"model": "demo", "messages": ['


class RawConnection:
    """One HTTP/1.1 connection over a plain socket, as a minimal client writes it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=WITHIN_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(
        self, method: str, path: str, key: str, body: bytes, encoding: str
    ) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        if encoding == "chunked":
            head += b"Transfer-Encoding: chunked\r\n\r\n"
            half = len(body) // 2
            parts = [body[:half], body[half:]]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"
        else:
            head += b"Content-Length: %d\r\n" % len(body)
            if encoding == "expect":
                head += b"Expect: 100-continue\r\n"
            head += b"\r\n"
            payload = body
        if encoding == "whole":
            self.sock.sendall(head + payload)
        else:
            self.sock.sendall(head)
            if encoding == "expect":
                status, _, _ = self._response()
                assert status == 100, f"expected 100 Continue, got {status}"
            else:
                time.sleep(0.001)  # the body in its own segment, after the headers
            self.sock.sendall(payload)
        return self._response()

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if status == 100:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._exactly(size)
                self._until(b"\r\n")
            self._until(b"\r\n")
            return status, headers, body
        return status, headers, self._exactly(int(headers.get("content-length", "0")))

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def _fill(self) -> None:
        data = self.sock.recv(65536)  # the socket's timeout: a hang fails here
        assert data, "the gateway closed the keep-alive connection"
        self.buffer += data


def within_limit(label: str, call: Callable[[], T]) -> T:
    """``call()``, which must answer within WITHIN_S (a hang fails with ``label``)."""
    started = time.monotonic()
    try:
        result = call()
    except (TimeoutError, openai.APITimeoutError):
        pytest.fail(f"{label}: no answer within {WITHIN_S} s")
    assert time.monotonic() - started < WITHIN_S, label
    return result


def test_early_answers_keep_one_raw_connection_working(
    served: tuple[Served, str], cpu_load: None
) -> None:
    gateway, key = served
    connection = RawConnection(gateway.url)
    chat = json.dumps(CHAT).encode()
    try:
        for n in range(ROUNDS):
            kind, encoding = EARLY[n % len(EARLY)], ENCODINGS[n // len(EARLY) % len(ENCODINGS)]
            label = f"round {n}, {kind} ({encoding} body)"
            request = early_request(kind, key)
            status, headers, body = within_limit(
                label, partial(connection.request, *request, encoding)
            )
            assert status == int(kind), (label, body)
            assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
            assert headers.get("connection") != "close", label
            label = f"round {n}, the chat after a {kind} ({encoding} body)"
            ok = within_limit(
                label,
                partial(connection.request, "POST", "/v1/chat/completions", key, chat, encoding),
            )
            assert ok[0] == 200, (label, ok[2])
    finally:
        connection.sock.close()


def test_early_answers_keep_the_sdk_pool_working(
    served: tuple[Served, str], cpu_load: None
) -> None:
    gateway, key = served
    pool = openai.DefaultHttpxClient(
        limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1)
    )
    # no retries: a dropped or hung connection must show, not be papered over
    sdk = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=key,
        max_retries=0,
        timeout=WITHIN_S,
        http_client=pool,
    )

    def refused(path: str, used_key: str, body: bytes) -> openai.APIStatusError:
        client = sdk.with_options(api_key=used_key)
        assert client._client is pool  # the same pooled connection
        with pytest.raises(openai.APIStatusError) as raised:
            client.post(path.removeprefix("/v1"), cast_to=object, content=body)
        return raised.value

    with pool, sdk:
        for n in range(ROUNDS):
            kind = EARLY[n % len(EARLY)]
            _, path, used_key, body = early_request(kind, key)
            error = within_limit(f"round {n}, {kind}", partial(refused, path, used_key, body))
            assert error.status_code == int(kind), (n, error)
            completion = within_limit(
                f"round {n}, the chat after a {kind}",
                lambda: sdk.chat.completions.create(**CHAT),  # type: ignore[call-overload]
            )
            assert completion.choices[0].message.content
