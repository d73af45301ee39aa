"""Bad input against a real gateway: a 4xx in OpenAI's shape before anything is admitted,
sent upstream, billed or written to /metrics — never a 500 (issue 10, findings 6, 11, 14).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from saferouter.catalog import load_catalog

from ..processes import cli, new_key, serving
from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway
from .test_errors import assert_openai_error

MESSAGES = [{"role": "user", "content": "hi"}]


def admin(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.admin_key}"}


async def get(gateway: Gateway, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.get(path, headers=admin(gateway))


async def post(gateway: Gateway, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(path, headers=admin(gateway), **kwargs)


async def books_of(gateway: Gateway, key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.get("/v1/credits", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- finding 6: JSON that parses but cannot be encoded again ---------------------------


@pytest.mark.parametrize("model", ["demo", "fake/x"])
async def test_a_lone_surrogate_is_a_400_before_admission(
    gateway: Gateway, upstream: FakeUpstream, model: str
) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "\\ud800"}]}' % (
        model.encode()
    )
    response = await post(gateway, "/v1/chat/completions", content=body)
    error = assert_openai_error(response, 400, "invalid_unicode")
    assert error["param"] == "messages[0].content"
    assert upstream.requests == []  # never sent, so never near the breaker
    assert "saferouter_upstream_attempts_total{" not in (await get(gateway, "/metrics")).text
    activity = (await get(gateway, "/v1/activity")).json()
    assert activity["data"] == []  # nothing admitted, nothing recorded


# --- finding 11: model ids reach headers and metric labels ----------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_newline_in_a_model_id_is_a_400_and_costs_nothing(
    gateway: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    key = await gateway.create_key("metered", credits_micro_usd=5_000_000)
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    # "delay:0" makes the fake upstream answer (or stream) at once: before the fix the
    # request was admitted, served, then failed on the X-SafeRouter-Model header.
    with pytest.raises(openai.BadRequestError) as caught:
        result = await client.chat.completions.create(
            model="fake/delay:0\n", messages=MESSAGES, stream=stream
        )
        if stream:
            async for _chunk in result:  # type: ignore[union-attr]
                pass
    assert caught.value.code == "invalid_model_id"
    await client.close()
    books = await books_of(gateway, key)
    assert (books["reserved_micro_usd"], books["spent_micro_usd"]) == (0, 0)
    assert books["balance_micro_usd"] == 5_000_000
    assert upstream.requests == []


async def test_the_models_fallback_list_is_held_to_the_same_rule(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    response = await post(
        gateway,
        "/v1/chat/completions",
        json={"model": "fake/a", "models": ["fake/a", "fake/b\r\nX-Evil: 1"], "messages": MESSAGES},
    )
    error = assert_openai_error(response, 400, "invalid_model_id")
    assert error["param"] == "models[1]"
    assert upstream.requests == []


async def test_a_model_id_may_be_256_bytes_not_257(gateway: Gateway) -> None:
    longest = "fake/" + "m" * 251
    response = await post(
        gateway, "/v1/chat/completions", json={"model": longest, "messages": MESSAGES}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-saferouter-model"] == longest
    response = await post(
        gateway, "/v1/chat/completions", json={"model": longest + "m", "messages": MESSAGES}
    )
    assert_openai_error(response, 400, "invalid_model_id")


# A catalog id may hold '"' and '\\' (both legal in a model id); an overloaded model's
# circuit is keyed "provider/id", so the id becomes a metric label.
ODD_MODEL = """
[[models]]
id = 'odd"}id\\'
provider = "fake"
upstream = "zai1305"
context_length = 1000
max_output = 100
price = { input = "1", output = "1" }
"""


async def test_metrics_parse_and_keep_a_quote_inside_its_label(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    settings = gateway_settings(tmp_path, upstream.url)
    with settings.catalog_path.open("a") as catalog:
        catalog.write(ODD_MODEL)
    settings = attrs.evolve(settings, catalog=load_catalog(settings.catalog_path))
    async with running_gateway(settings) as gateway:
        for model in ('odd"}id\\', "fake/x", "chain-a"):  # overloaded, served, failed over
            await post(gateway, "/v1/chat/completions", json={"model": model, "messages": MESSAGES})
        text = (await get(gateway, "/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    keys = {s.labels["key"] for s in families["saferouter_circuit_state"].samples}
    assert 'fake/odd"}id\\' in keys
    assert set(families) == {
        "saferouter_circuit_state",
        "saferouter_request_duration_seconds",
        "saferouter_gateway_overhead_seconds",
        "saferouter_upstream_first_byte_seconds",
        "saferouter_upstream_duration_seconds",
        "saferouter_upstream_attempts",
        "saferouter_tokens",
        "saferouter_cost_micro_usd",
        "saferouter_open_streams",
        "saferouter_upstream_connections",
        "saferouter_overrun_micro_usd",
    }
    # a model id a client made up is no label value: only the catalog's ids are
    models = {s.labels.get("model") for f in families.values() for s in f.samples}
    assert models <= {None, "", "unknown", "unlisted", *settings.catalog.models}
    assert 'odd"}id\\' in models  # escaped and read back whole


# --- finding 14: every bad number, query or path is a 4xx -----------------------------


@pytest.mark.parametrize(
    "amount",
    ["1e999999", "5_000", "١٢", "²", "1e3", "-1", "0.0000001", 10**10, 1e300, "NaN"],
)
async def test_a_bad_usd_amount_is_a_400_and_adds_nothing(gateway: Gateway, amount: Any) -> None:
    key = await gateway.create_key("topped", credits_micro_usd=1_000_000)
    key_id = (await books_of(gateway, key))["key_id"]
    response = await post(
        gateway, "/v1/credits/topup", json={"key_id": key_id, "amount_usd": amount}
    )
    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "amount_usd"
    response = await post(gateway, "/v1/keys", json={"name": "k", "credits_usd": amount})
    assert assert_openai_error(response, 400, "invalid_value")["param"] == "credits_usd"
    assert (await books_of(gateway, key))["balance_micro_usd"] == 1_000_000


async def test_a_decimal_amount_in_ascii_digits_is_exact(gateway: Gateway) -> None:
    key = await gateway.create_key("topped", credits_micro_usd=0)
    key_id = (await books_of(gateway, key))["key_id"]
    for amount in ("12.5", 0.25, 2):
        response = await post(
            gateway, "/v1/credits/topup", json={"key_id": key_id, "amount_usd": amount}
        )
        assert response.status_code == 200, response.text
    assert (await books_of(gateway, key))["balance_micro_usd"] == 14_750_000


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/activity?before=99999999999999999999", "before"),  # OverflowError in SQLite
        ("/v1/activity?before=²", "before"),  # isdigit() but not int()
        ("/v1/activity?before=١٢", "before"),  # int() reads 12
        ("/v1/activity?before=5_000", "before"),
        ("/v1/activity?limit=١٠", "limit"),
        ("/v1/activity?since=²", "since"),
        ("/v1/activity?until=1e308", "until"),
        ("/v1/activity/stats?window=١h", "window"),
        ("/attestation/transparency?start=²", "start"),
        ("/attestation/transparency?start=99999999999999999999", "start"),
        ("/attestation/transparency?limit=5_000", "limit"),
        ("/attestation/transparency/proof?first=١", "first"),
        ("/attestation/transparency/proof?second=²", "second"),
        ("/attestation/audit/proof?second=-1", "second"),
        ("/v1/audit/samples?start=²", "start"),
        ("/v1/audit/samples?replica=" + "١" * 64, "replica"),
        ("/v1/audit/samples?replica=" + "ab" * 31, "replica"),
    ],
)
async def test_a_query_number_not_in_ascii_digits_is_a_400(
    gateway: Gateway, path: str, param: str
) -> None:
    error = assert_openai_error(await get(gateway, path), 400, "invalid_value")
    assert error["param"] == param


@pytest.mark.parametrize(
    "path",
    [
        "/assets/%00",  # ValueError: embedded null byte
        "/assets/" + "a" * 5000 + ".js",  # OSError: file name too long
        "/assets/%2e%2e/%2e%2e/pyproject.toml",
        "/assets/app.js%00.css",
        "/vendor/%2e%2e/assets/app.js",  # vendored code is served from saferouter/web/vendor/ only
        "/vendor/tweetnacl/nacl-fast.min.js",  # npm's name: two dots are no asset name
        "/attestation/transparency/99999999999999999999",
        "/attestation/transparency/١٢",
        "/attestation/audit/²",
    ],
)
async def test_an_odd_path_is_a_404(gateway: Gateway, path: str) -> None:
    assert_openai_error(await get(gateway, path), 404, "unknown_url")


@pytest.mark.parametrize("path", ["/assets/app.js", "/vendor/noble-hashes/blake2.js"])
async def test_the_real_assets_are_still_served(gateway: Gateway, path: str) -> None:
    response = await get(gateway, path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")


# --- the same through `saferouter serve`, whose log must stay free of tracebacks -------


def raw_status_line(url: str, target: str) -> bytes:
    """The status line of one HTTP/1.1 GET whose request target is sent exactly as
    given (an HTTP client would rewrite ``/v1//models``)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data and (chunk := sock.recv(4096)):
            data += chunk
    return data.split(b"\r\n", 1)[0]


def test_a_served_gateway_answers_bad_input_with_4xx_and_logs_no_traceback(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = new_key(data, "--name", "ops", "--admin")
    headers = {"Authorization": f"Bearer {key}"}
    with serving(data) as served:
        with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
            bad = [
                client.post(
                    "/v1/chat/completions",
                    content=b'{"model":"demo","messages":[{"role":"user","content":"\\udc00"}]}',
                ),
                client.post(
                    "/v1/chat/completions",
                    json={"model": "demo\n", "messages": MESSAGES, "stream": True},
                ),
                client.post("/v1/credits/topup", json={"key_id": "k", "amount_usd": "1e999999"}),
                client.get("/assets/%00"),
                client.get("/v1/activity?before=99999999999999999999"),
                client.get("/v1/activity?before=²"),
                client.get("/attestation/transparency?start=²"),
            ]
            for response in bad:
                assert 400 <= response.status_code < 500, response.text
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            ok = client.post("/v1/chat/completions", json={"model": "demo", "messages": MESSAGES})
            assert ok.status_code == 200, ok.text
        # werkzeug answered a doubled slash with a 308 redirect and an HTML body
        assert raw_status_line(served.url, "/v1//models") == b"HTTP/1.1 404 "
        assert raw_status_line(served.url, "/attestation//transparency") == b"HTTP/1.1 404 "
    assert "Traceback" not in served.output, served.output
    assert "unexpected" not in served.output, served.output


def test_the_cli_refuses_an_amount_it_cannot_read_without_a_traceback(tmp_path: Path) -> None:
    for amount in ("1e999999", "5_000", "١٢"):
        result = cli(tmp_path / "data", "keys", "create", "--name", "x", "--credits", amount)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "credits" in result.stderr
    for flag in ("--rpm", "--tpm"):
        for limit in ("١٢", "99999999999999999999", "0"):
            result = cli(tmp_path / "data", "keys", "create", "--name", "x", flag, limit)
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr and flag[2:] in result.stderr
