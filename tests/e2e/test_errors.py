"""Every failure a client can cause or meet gets an OpenAI-shaped JSON error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
import trio

from saferouter.config import Timeouts

from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-saferouter-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    if code is not None:
        assert error["code"] == code
    return error


async def post(
    gateway: Gateway,
    content: bytes | None = None,
    *,
    json: object = None,
    key: str | None = "admin",
    **kwargs: object,
) -> httpx.Response:
    headers = {}
    if key == "admin":
        headers["Authorization"] = f"Bearer {gateway.admin_key}"
    elif key is not None:
        headers["Authorization"] = key
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions", content=content, json=json, headers=headers, **kwargs
        )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_body"),
        (
            b'{"messages": [{"role": "user", "content": "x"}]}',
            "model",
            "missing_required_parameter",
        ),
        (b'{"model": 5, "messages": []}', "model", "invalid_type"),
        (b'{"model": "demo"}', "messages", "missing_required_parameter"),
        (b'{"model": "demo", "messages": "hi"}', "messages", "invalid_type"),
        (b'{"model": "demo", "messages": []}', "messages", "empty_array"),
        (b'{"model": "demo", "messages": ["hi"]}', "messages", "invalid_type"),
        (b'{"model": "demo", "messages": [{}], "stream": "yes"}', "stream", "invalid_type"),
        (
            b'{"model": "demo", "messages": [{}], "stream": true, "stream_options": 1}',
            "stream_options",
            "invalid_type",
        ),
        (
            b'{"model": "demo", "messages": [{}], "stream_options": {"include_usage": true}}',
            "stream_options",
            "invalid_value",
        ),
        (
            b'{"model": "demo", "messages": [{}], "stream": true, '
            b'"stream_options": {"include_usage": "y"}}',
            "stream_options.include_usage",
            "invalid_type",
        ),
        (b'{"model": "demo", "messages": [{}], "max_tokens": "10"}', "max_tokens", "invalid_type"),
        (b'{"model": "demo", "messages": [{}], "max_tokens": true}', "max_tokens", "invalid_type"),
        (b'{"model": "demo", "messages": [{}], "max_tokens": 0}', "max_tokens", "invalid_value"),
        (
            b'{"model": "demo", "messages": [{}], "max_completion_tokens": 1.5}',
            "max_completion_tokens",
            "invalid_type",
        ),
        (b"[" * 100_000, None, "invalid_json"),
    ],
)
async def test_bad_requests_get_400(
    gateway: Gateway, upstream: FakeUpstream, body: bytes, param: str | None, code: str
) -> None:
    error = assert_openai_error(await post(gateway, body), 400, code)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert upstream.requests == []


async def test_unknown_model_is_404(gateway: Gateway) -> None:
    error = assert_openai_error(
        await post(gateway, json={"model": "no-such-model", "messages": MESSAGES}),
        404,
        "model_not_found",
    )
    assert "no-such-model" in error["message"]


@pytest.mark.parametrize(
    "auth", [None, "Bearer", "Bearer sk-sr-wrong", "Basic abc", "sk-sr-no-scheme"]
)
async def test_missing_or_bad_key_is_401(
    gateway: Gateway, upstream: FakeUpstream, auth: str | None
) -> None:
    response = await post(gateway, json={"model": "demo", "messages": MESSAGES}, key=auth)
    error = assert_openai_error(response, 401)
    assert error["type"] == "authentication_error"
    assert upstream.requests == []


async def test_revoked_key_fails_on_its_next_request(gateway: Gateway) -> None:
    secret = await gateway.create_key()
    body = {"model": "demo", "messages": MESSAGES}
    assert (await post(gateway, json=body, key=f"Bearer {secret}")).status_code == 200
    (record,) = [k for k in await gateway.store.list_keys() if k.role == "user"]
    await gateway.store.revoke_key(record.id)
    assert_openai_error(
        await post(gateway, json=body, key=f"Bearer {secret}"), 401, "revoked_api_key"
    )


async def test_body_over_the_limit_is_413(gateway: Gateway, upstream: FakeUpstream) -> None:
    big = (
        b'{"model": "demo", "messages": [{"role": "user", "content": "'
        + b"x" * gateway.settings.max_body_bytes
        + b'"}]}'
    )
    assert_openai_error(await post(gateway, big), 413, "request_too_large")

    async def chunked() -> object:
        for _ in range(gateway.settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    assert_openai_error(await post(gateway, chunked()), 413)  # type: ignore[arg-type]
    assert upstream.requests == []


async def test_a_chunked_body_is_413_once_over_the_limit_not_when_it_ends(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """A chunked upload past the limit that goes on (here: never ends) is answered as soon
    as draining it stops being worth it, not after the body timeout (a 408, 60 s)."""
    settings = gateway_settings(tmp_path, upstream.url, SAFEROUTER_MAX_BODY_BYTES="4096")
    async with running_gateway(settings) as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        with trio.socket.socket() as sock:
            await sock.connect((host, int(port)))
            await sock.send(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                % gateway.admin_key.encode()
            )
            for _ in range(3):  # past twice the limit (what may be drained); no last chunk
                await sock.send(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            answer = b""
            with trio.fail_after(30):  # generous, and half the body timeout
                while chunk := await sock.recv(65536):
                    answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in head.lower() and b"x-saferouter-request-id: req_" in head
    assert b'"code": "request_too_large"' in body
    assert upstream.requests == []


async def test_wrong_method_is_405_and_unknown_path_is_404(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/v1/chat/completions")
        assert_openai_error(response, 405, "method_not_allowed")
        assert "POST" in response.headers["allow"]
        assert_openai_error(await client.get("/v1/nothing-here"), 404, "unknown_url")
        assert_openai_error(await client.delete("/v1/models"), 405)


async def test_leading_slashes_reach_chat_as_they_reach_every_other_path(
    gateway: Gateway,
) -> None:
    """A base URL ending in "/" joined to "/v1/…" (``//v1/…``): Quart routes it, and the
    chat URL, answered in front of Quart, must not be the one path that is 404."""
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    chat = {"model": "demo", "messages": MESSAGES}
    async with httpx.AsyncClient(headers=headers) as client:
        assert (await client.get(gateway.url + "//v1/models")).status_code == 200
        response = await client.post(gateway.url + "//v1/chat/completions", json=chat)
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "chat.completion"
        # an empty segment inside the path stays unknown, for chat as for models
        assert_openai_error(await client.get(gateway.url + "/v1//models"), 404)
        response = await client.post(gateway.url + "/v1//chat/completions", json=chat)
        assert_openai_error(response, 404, "unknown_url")


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        (
            "status:400:errors/deepseek__400_invalid_request_octet_stream.json",
            400,
            "invalid_request_error",
        ),
        ("status:404:errors/groq__404_model_not_found.json", 404, "model_not_found"),
        ("status:429", 429, None),
        ("status:401", 502, "upstream_auth_failed"),
        ("status:402", 502, "upstream_insufficient_balance"),
        ("status:500", 502, "upstream_error"),
        ("status:502", 502, "upstream_error"),
        ("status:503", 503, "upstream_unavailable"),
    ],
)
async def test_upstream_errors(
    testdata: object, gateway: Gateway, mode: str, status: int, code: str | None
) -> None:
    for stream in (False, True):
        response = await post(
            gateway, json={"model": f"fake/{mode}", "messages": MESSAGES, "stream": stream}
        )
        if code == "upstream_insufficient_balance" and stream:
            # an empty provider account opens the circuit at once: the next request is
            # not even sent (a 401 for a model the client named is that request's only:
            # tests/e2e/test_circuits.py)
            assert_openai_error(response, 503, "circuit_open")
            continue
        error = assert_openai_error(response, status, code)
        assert response.headers["x-saferouter-provider"] == "fake"
        assert "sk-upstream-secret" not in response.text
        if mode.endswith("octet_stream.json"):
            assert error["message"] == "No tool output found for tool call call-a."
        if status == 429:
            assert response.headers["retry-after"] == "7"


async def test_unreachable_upstream_is_503(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9")  # discard port: refused
    async with running_gateway(settings) as gateway:
        response = await post(gateway, json={"model": "fake/x", "messages": MESSAGES})
    assert_openai_error(response, 503, "upstream_unavailable")


async def test_silent_upstream_is_504(tmp_path: Path, upstream: FakeUpstream) -> None:
    settings = gateway_settings(tmp_path, upstream.url)
    async with running_gateway(settings, timeouts=Timeouts(first_byte_s=0.3)) as gateway:
        response = await post(gateway, json={"model": "fake/hang", "messages": MESSAGES})
    assert_openai_error(response, 504, "upstream_first_byte_timeout")


async def test_provider_without_key_is_503(tmp_path: Path) -> None:
    async with running_gateway(gateway_settings(tmp_path, "http://127.0.0.1:9")) as gateway:
        response = await post(gateway, json={"model": "deepseek-flash", "messages": MESSAGES})
    error = assert_openai_error(response, 503, "provider_not_configured")
    assert "DEEPSEEK_API_KEY" in error["message"]


async def test_internal_error_is_500_with_request_id_and_no_internals(gateway: Gateway) -> None:
    # Break the database under the running gateway: its key lookup then fails.
    db = sqlite3.connect(gateway.settings.data_dir / "saferouter.db")
    db.execute("DROP TABLE keys")
    db.commit()
    db.close()
    response = await post(gateway, json={"model": "demo", "messages": MESSAGES})
    error = assert_openai_error(response, 500, "internal_error")
    assert response.headers["x-saferouter-request-id"] in error["message"]
    assert "had a storage error" in error["message"]  # the store's, not another of ours
    assert "sqlite" not in response.text.lower() and "keys" not in error["message"]
