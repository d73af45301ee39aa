"""The verifier's own trust decisions against real `saferouter serve` processes: the DEMO
root, pinned origins, the TLS key bound to the quote, and the pinned client of
``saferouter.client`` driven by the real openai SDK."""

from __future__ import annotations

import json
from pathlib import Path

import certifi
import openai
import pytest
import trio
from cryptography.hazmat.primitives import serialization

from saferouter.client import attested_async_client, attested_client
from saferouter.verify.channel import TLSKeyMismatch
from saferouter.verify.client import run_checks
from saferouter.verify.evidence import CheckFailed

from ..processes import CHAT, cli, free_port, new_key, serving
from ..tls_proxy import tls_terminating_proxy


def last_lines(stdout: str, count: int = 2) -> list[str]:
    return stdout.strip().splitlines()[-count:]


def test_a_demo_gateway_fails_unless_demo_is_allowed(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--tls") as served:
        refused = cli(tmp_path, "verify", served.url)
        refused_json = cli(tmp_path, "verify", served.url, "--json")
        allowed = cli(tmp_path, "verify", served.url, "--allow-demo")
        allowed_json = cli(tmp_path, "verify", served.url, "--allow-demo", "--json")
        # --cafile adds CA validation on top of the pin: its own certificate as the CA
        # passes, an unrelated CA fails before anything is believed
        assert served.certificate is not None
        own = tmp_path / "own.pem"
        own.write_bytes(served.certificate.public_bytes(serialization.Encoding.PEM))
        with_ca = run_checks(served.url, allow_demo=True, cafile=str(own))
        other_ca = run_checks(served.url, allow_demo=True, cafile=certifi.where())
    assert with_ca.passed, with_ca.steps
    assert not other_ca.passed and other_ca.steps[-1].name == "status"
    assert "CERTIFICATE_VERIFY_FAILED" in other_ca.steps[-1].detail
    assert refused.returncode == 1
    failed, result = last_lines(refused.stdout)
    assert failed.startswith("✗ (3) report and chain") and "DEMO root" in failed
    assert result == "FAILED"
    body = json.loads(refused_json.stdout)
    assert body["passed"] is False and body["root"] == "DEMO"
    assert body["steps"][-1]["name"] == "report and chain"
    assert allowed.returncode == 0, allowed.stdout
    assert "✓ (5) TLS key: the quote came over TLS to the attested key" in allowed.stdout
    assert last_lines(allowed.stdout, 1) == ["VERIFIED (DEMO root — no hardware guarantee)"]
    body = json.loads(allowed_json.stdout)
    assert body["passed"] is True and body["root"] == "DEMO" and len(body["steps"]) == 12


def test_an_audience_other_than_the_url_fails_the_pinned_origin(tmp_path: Path) -> None:
    env = {"SAFEROUTER_AUDIENCE": "gateway.example"}
    with serving(tmp_path / "data", env=env) as served:
        wrong = run_checks(served.url, allow_demo=True)
        named = run_checks(served.url, allow_demo=True, audience="gateway.example")
    failed = wrong.steps[-1]
    assert (failed.number, failed.name, failed.ok) == (8, "startup log", False)
    assert "127.0.0.1" in failed.detail and "'gateway.example/startup'" in failed.detail
    assert named.passed, named.steps


async def test_a_tls_terminating_proxy_is_caught(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data, "--tls") as served:
        secret = new_key(data, "--name", "user")
        audience = served.url.removeprefix("https://")
        async with tls_terminating_proxy(served.url) as proxy:
            # verify through the proxy: everything holds but the connection's key
            checked = await trio.to_thread.run_sync(
                lambda: run_checks(proxy.url, allow_demo=True, audience=audience)
            )
            # a client pinned to the gateway, sent to the proxy (say DNS now points there)
            pinned = await trio.to_thread.run_sync(
                lambda: attested_client(served.url, allow_demo=True)
            )
            before = (proxy.handshakes, proxy.bytes_from_clients, proxy.target_connections)
            sdk = openai.OpenAI(
                base_url=proxy.url + "/v1", api_key=secret, http_client=pinned, max_retries=0
            )
            # the SDK passes the refusal on as it is (it wraps only httpx's own errors)
            with pytest.raises(TLSKeyMismatch, match="nothing was sent"):
                await trio.to_thread.run_sync(
                    lambda: sdk.chat.completions.create(model="demo", messages=CHAT["messages"])
                )
            with trio.fail_after(10):  # the refusal came after a finished handshake
                while proxy.handshakes == before[0]:
                    await trio.sleep(0.01)
            after = (proxy.handshakes, proxy.bytes_from_clients, proxy.target_connections)
            with pytest.raises(CheckFailed, match=r"\(5\) TLS key"):
                await trio.to_thread.run_sync(
                    lambda: attested_client(proxy.url, allow_demo=True, audience=audience)
                )
            pinned.close()
    failed = checked.steps[-1]
    assert (failed.number, failed.name, failed.ok) == (5, "TLS key", False), checked.steps
    assert "not the attested" in failed.detail
    # the proxy completed a handshake with the pinned client and got not one byte of it,
    # so it never reached the gateway
    assert after == (before[0] + 1, before[1], before[2])


def chat(client: openai.OpenAI) -> str:
    answer = client.chat.completions.create(model="demo", messages=CHAT["messages"])
    stream = client.chat.completions.create(model="demo", messages=CHAT["messages"], stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed, "the stream carried no text"
    return answer.choices[0].message.content or ""


def test_a_pinned_client_refuses_a_new_tls_key_until_verified_again(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    with serving(data, "--tls", port=port) as served:
        secret = new_key(data, "--name", "user")
        url = served.url
        old = attested_client(url, allow_demo=True)
        assert chat(openai.OpenAI(base_url=url + "/v1", api_key=secret, http_client=old))
        old.close()  # its connections are gone; the pin stays with a new pool below
        old = attested_client(url, allow_demo=True)
    (data / "tls.key").unlink()  # the same gateway, the same URL, a new TLS key
    with serving(data, "--tls", port=port) as served:
        assert served.url == url
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=secret, http_client=old, max_retries=0)
        with pytest.raises(TLSKeyMismatch, match="nothing was sent"):
            sdk.chat.completions.create(model="demo", messages=CHAT["messages"])
        fresh = attested_client(url, allow_demo=True)
        assert chat(openai.OpenAI(base_url=url + "/v1", api_key=secret, http_client=fresh))
        fresh.close()


async def test_the_async_client_verifies_and_chats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data, "--tls") as served:
        secret = new_key(data, "--name", "user")
        client = await attested_async_client(served.url, allow_demo=True)
        async with client:
            sdk = openai.AsyncOpenAI(
                base_url=served.url + "/v1", api_key=secret, http_client=client
            )
            answer = await sdk.chat.completions.create(model="demo", messages=CHAT["messages"])
        assert answer.choices[0].message.content
        with pytest.raises(CheckFailed, match=r"\(3\) report and chain"):
            await attested_async_client(served.url)  # demo not allowed


def test_plain_http_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as served:
        with pytest.raises(CheckFailed, match="not https"):
            attested_client(served.url, allow_demo=True)
        with attested_client(served.url, allow_demo=True, allow_insecure_http=True) as client:
            assert client.get("/attestation").status_code == 200
