"""Byte-exact relay of every recorded stream and body, through a real socket."""

from __future__ import annotations

import json

import httpx
import pytest

from ..recordings import (
    RECORDINGS,
    entry,
    jsonl_paths,
    nonstream_paths,
    recording_params,
    sse_paths,
    stream_bytes,
)
from ..servers import FakeUpstream, Gateway

STREAMS = sse_paths() + jsonl_paths()


def chat_body(model: str, *, stream: bool, **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        **extra,
    }


def without_usage_only_events(data: bytes) -> bytes:
    """The recording minus its `choices: []` usage chunks, split the plain way (no
    recording with such a chunk uses CRLF)."""
    kept = []
    for event in data.split(b"\n\n"):
        payload = event.removeprefix(b"data: ")
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("choices") == [] and obj.get("usage"):
            continue
        kept.append(event)
    return b"\n\n".join(kept)


def incomplete(relative: str) -> bool:
    """From the index's own analysis: the recording ends neither with [DONE], nor with an
    error event, nor with a Responses API terminal event."""
    analysis = entry(relative)["analysis"]
    terminal = {"response.completed", "response.failed", "response.incomplete"}
    return (
        not analysis.get("done", True)
        and not analysis["in_stream_errors"]
        and not terminal & set(analysis["event_fields"])
    )


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("relative", recording_params(STREAMS))
async def test_recorded_stream_arrives_byte_identical(
    testdata: object,
    gateway: Gateway,
    upstream: FakeUpstream,
    relative: str,
    include_usage: bool,
) -> None:
    """With `include_usage` the client gets the recording exactly; without, exactly the
    recording minus the usage-only chunk (the gateway asked for it to bill). A recording
    that just stops — no `[DONE]`, no error of its own, no Responses-API terminal event —
    is followed by one honest error event."""
    recorded = stream_bytes(relative)
    expected = recorded if include_usage else without_usage_only_events(recorded)
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    seed = sum(relative.encode()) % 1000  # each recording cut differently, reproducibly
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            headers=headers,
            json=chat_body(f"fake/replay:{relative}@{seed}", stream=True, **extra),
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-saferouter-provider"] == "fake"
        assert response.headers["x-saferouter-request-id"].startswith("req_")
        received = b"".join([chunk async for chunk in response.aiter_raw()])
    assert received[: len(expected)] == expected
    tail = received[len(expected) :]
    if incomplete(relative):
        assert tail.startswith(b"data: ") and tail.endswith(b"\n\n")
        error = json.loads(tail[len(b"data: ") :])["error"]
        assert error["code"] == "upstream_stream_incomplete"
        assert "without [DONE]" in error["message"]
    else:
        assert tail == b""
    sent = upstream.requests[-1]
    assert sent["body"]["model"] == f"replay:{relative}@{seed}"
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream-secret-1234"
    assert sent["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("relative", recording_params(nonstream_paths()))
async def test_recorded_body_arrives_byte_identical(
    testdata: object, gateway: Gateway, relative: str
) -> None:
    assert RECORDINGS is not None
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=headers,
            json=chat_body(f"fake/file:{relative}", stream=False),
        )
    assert response.status_code == 200
    assert response.content == (RECORDINGS / relative).read_bytes()
    assert response.headers["content-type"].startswith("application/json")


async def test_other_fields_are_forwarded_untouched(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    extra = {
        "temperature": 0.7,
        "thinking": {"type": "enabled"},
        "reasoning_effort": "high",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "user": "ünïcode ✓",
        "n": 1,
        "seed": 12345678901234567890,
    }
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=headers,
            json=chat_body("fake/echo", stream=False, **extra),
        )
    assert response.status_code == 200
    received = response.json()["received"]
    assert received == {**chat_body("echo", stream=False), **extra}
    assert received["seed"] == 12345678901234567890
    assert json.loads(upstream.requests[-1]["raw"])["user"] == "ünïcode ✓"


async def test_the_upstream_gets_the_client_bytes_but_for_model_models_and_usage(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """Key order, spacing, escapes and number forms arrive as the client wrote them; only
    ``model`` (the upstream name), ``models`` (gone, with its comma) and a stream's
    ``stream_options.include_usage`` (asked for, to bill) differ."""
    messages = '[{"role":"user","content":"h\\u00e9llo \\/ é \\ud83d\\ude00 ✓"}]'.encode()
    sent_and_received = [
        (
            b'{ "messages" : ' + messages + b',\n"models":["fake/echo"], "temperature": 1.50,'
            b' "model":"fake/echo", "seed": 12345678901234567890, "x": 1E+2 }',
            b'{ "messages" : ' + messages + b', "temperature": 1.50,'
            b' "model":"echo", "seed": 12345678901234567890, "x": 1E+2 }',
        ),
        (
            b'{"model":"fake/delay:0","stream":true,"stream_options":{"x-opt":[],'
            b'"include_usage":false},\t"messages":' + messages + b"}",
            b'{"model":"delay:0","stream":true,"stream_options":{"x-opt":[],'
            b'"include_usage":true},\t"messages":' + messages + b"}",
        ),
    ]
    headers = {"Authorization": f"Bearer {gateway.admin_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        for body, expected in sent_and_received:
            response = await client.post("/v1/chat/completions", headers=headers, content=body)
            assert response.status_code == 200, response.text
            assert upstream.requests[-1]["raw"] == expected
