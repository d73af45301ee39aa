"""CORS over real HTTP: a real gateway (hypercorn on 127.0.0.1) asked as a browser
asks — preflights, then the calls — from a listed origin and from another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ..processes import cli
from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway

APP = "http://127.0.0.1:5173"
OTHER = "http://127.0.0.1:5174"
CHAT = {"model": "fake/delay:0", "messages": [{"role": "user", "content": "hi"}]}
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-stainless-lang",
}
PATHS = ("/v1/chat/completions", "/v1/models", "/v1/keys", "/api/v1/chat/completions")


@pytest.fixture
async def cors_gateway(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path, upstream.url, SAFEROUTER_CORS_ORIGINS=f"{APP}, https://other-app.example"
    )
    async with running_gateway(settings) as gw:
        yield gw


def _cors(reply: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("access-control-")}


async def test_a_listed_origin_is_answered_its_preflights(cors_gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=cors_gateway.url) as client:
        for path in PATHS:
            reply = await client.options(path, headers={"Origin": APP, **PREFLIGHT})
            assert reply.status_code == 204, (path, reply.text)
            cors = _cors(reply)
            assert cors["access-control-allow-origin"] == APP
            assert "POST" in cors["access-control-allow-methods"]
            assert cors["access-control-allow-headers"] == (
                "authorization, content-type, x-stainless-lang"
            )
            assert "Origin" in reply.headers["vary"]


async def test_another_origin_gets_no_cors_header(cors_gateway: Gateway) -> None:
    auth = {"Authorization": f"Bearer {cors_gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=cors_gateway.url) as client:
        for path in PATHS:
            preflight = await client.options(path, headers={"Origin": OTHER, **PREFLIGHT})
            assert preflight.status_code != 204 and _cors(preflight) == {}, path
        call = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Origin": OTHER, **auth}
        )
        # served (CORS binds browsers, not the server) but readable by no page of OTHER
        assert call.status_code == 200 and _cors(call) == {}
        assert call.headers["vary"] == "Origin"


async def test_a_listed_origin_reads_answers_and_their_headers(cors_gateway: Gateway) -> None:
    limited = await cors_gateway.create_key(rpm_limit=100)
    origin = {"Origin": APP, "Authorization": f"Bearer {limited}"}
    async with httpx.AsyncClient(base_url=cors_gateway.url) as client:
        chat = await client.post("/v1/chat/completions", json=CHAT, headers=origin)
        streamed = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=origin
        )
        models = await client.get("/v1/models", headers=origin)  # a Quart route
        refused = await client.get("/v1/keys", headers={"Origin": APP})  # no key: 401
        # the pipeline's own refusal, which a browser app must be able to read too
        unpaid = await client.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP})
    for reply in (chat, streamed, models, refused, unpaid):
        assert reply.headers["access-control-allow-origin"] == APP, reply.request.url
        assert "Origin" in reply.headers.get_list("vary"), reply.request.url
    assert chat.status_code == streamed.status_code == models.status_code == 200
    assert refused.status_code == unpaid.status_code == 401 and unpaid.json()["error"]["code"]
    exposed = {
        name.strip().lower() for name in chat.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-saferouter-request-id", "server-timing", "x-ratelimit-remaining"} <= exposed
    # only what this response carries: each exposed header is there to read
    assert all(name in chat.headers for name in exposed)


async def test_the_rest_is_left_as_it_was(cors_gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=cors_gateway.url) as client:
        page = await client.get("/", headers={"Origin": APP})
        attestation = await client.get("/attestation", headers={"Origin": OTHER})
    assert page.status_code == 200 and _cors(page) == {}
    assert attestation.headers["access-control-allow-origin"] == "*"  # open to any verifier


async def test_cors_is_off_by_default(gateway: Gateway) -> None:
    auth = {"Authorization": f"Bearer {gateway.admin_key}"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        preflight = await client.options(
            "/v1/chat/completions", headers={"Origin": APP, **PREFLIGHT}
        )
        call = await client.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP, **auth})
    assert _cors(preflight) == {} and _cors(call) == {}
    assert "vary" not in call.headers


def test_a_bad_origin_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    done = cli(tmp_path, "serve", "--cors-origin", "https://app.example.com/", "--port", "1")
    assert done.returncode == 2
    assert "--cors-origin 'https://app.example.com/' is not an origin" in done.stderr
    assert "Traceback" not in done.stderr
