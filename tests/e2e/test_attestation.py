"""Attestation endpoints on a live gateway: quotes, logs, audit samples, the canary."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from saferouter.canonical import canonical_json
from saferouter.tee import verify as tee_verify
from saferouter.tee.abi import Product
from saferouter.tee.demo import DEMO_SUFFIX
from saferouter.tee.kds import load_certificate
from saferouter.translog import merkle, note
from saferouter.translog.receipt import receipt_leaf_hash

from ..servers import FakeUpstream, Gateway, gateway_settings, running_gateway


@pytest.fixture
async def sampled(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, upstream.url, SAFEROUTER_AUDIT_RATE="1")
    async with running_gateway(settings) as gateway:
        yield gateway


async def test_quote_binds_the_nonce_and_verifies_as_demo(gateway: Gateway) -> None:
    nonce = secrets.token_bytes(32)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        status = (await client.get("/attestation")).json()
        key = (await client.get("/attestation/verifying-key")).json()
        response = await client.post("/attestation/quote", json={"nonce": nonce.hex()})
        bad = await client.post("/attestation/quote", json={"nonce": "abcd"})
    assert response.headers["access-control-allow-origin"] == "*"
    quote = response.json()
    claims = quote["claims"]
    assert claims["nonce"] == nonce.hex() and claims["identity"] == key["public_key"]
    assert claims["measurement"] == status["measurement"] and status["mode"] == "demo"
    assert set(claims) == {
        "nonce",
        "identity",
        "measurement",
        "build",
        "audience",
        "time",
        "tls_spki_sha256",
        "byok_public_key",
    }
    assert claims["tls_spki_sha256"] is None and status["tls_spki_sha256"] is None  # no --tls
    report_data = hashlib.sha512(canonical_json(claims)).digest()
    assert quote["report_data"] == report_data.hex()
    certs = {k: load_certificate(v.encode()) for k, v in quote["certificates"].items()}
    root = tee_verify.TrustRoot(
        name="DEMO",
        ark={Product.GENOA: tee_verify.fingerprint(certs["ark"])},
        ask={Product.GENOA: tee_verify.fingerprint(certs["ask"])},
        asvk={},
        cn_suffix=DEMO_SUFFIX,
    )
    verified = tee_verify.verify_report(
        bytes.fromhex(quote["report"]),
        vek=certs["vcek"],
        ask=certs["ask"],
        ark=certs["ark"],
        now=dt.datetime.now(dt.UTC),
        root=root,
    )
    assert verified.root == "DEMO" and verified.report.report_data == report_data
    with pytest.raises(tee_verify.ArkInvalid):  # never passes as AMD
        tee_verify.verify_report(
            bytes.fromhex(quote["report"]),
            vek=certs["vcek"],
            ask=certs["ask"],
            ark=certs["ark"],
            now=dt.datetime.now(dt.UTC),
        )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "nonce"


async def test_quotes_are_rate_limited(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        codes = [
            (await client.post("/attestation/quote", json={"nonce": "00" * 16})).status_code
            for _ in range(62)
        ]
    assert codes.count(200) == 60 and codes[-1] == 429


async def samples_of(gateway: Gateway, key: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        data: list[dict[str, object]] = (await client.get("/v1/audit/samples")).json()["data"]
    return data


@pytest.mark.parametrize("stream", [False, True])
async def test_sampled_requests_publish_only_leaves(sampled: Gateway, stream: bool) -> None:
    """An audit sample is a receipt drawn as one: its key (and admins) read it with
    salted commitments that its salt and bytes open; the public log holds its leaf
    hash only, so the plain SHA-256 of the request or response and the salt appear in
    no public response."""
    body = (
        b'{"model": "demo", "stream": %s, "messages": [{"role": "user", '
        b'"content": "hash me"}]}' % (b"true" if stream else b"false")
    )
    user = await sampled.create_key("user")
    async with httpx.AsyncClient(base_url=sampled.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {user}"},
        ) as response:
            received = await response.aread()
        head = (await client.get("/attestation/audit/head")).json()
        vkey = (await client.get("/attestation/verifying-key")).json()["audit_log_vkey"]
    receipt_id = response.headers["x-saferouter-audit-sample"]
    assert receipt_id == response.headers["x-saferouter-receipt"]
    mine = await samples_of(sampled, user)
    everyone = await samples_of(sampled, sampled.admin_key)
    assert [s["receipt_id"] for s in mine] == [receipt_id] and len(everyone) >= 1
    index = mine[0]["index"]
    assert isinstance(index, int)
    async with httpx.AsyncClient(base_url=sampled.url) as client:
        entry = (await client.get(f"/attestation/audit/{index}")).json()
    public = [json.dumps(entry), *(await public_texts(sampled, index))]
    receipt = mine[0]["receipt"]
    assert isinstance(receipt, dict) and receipt["audit_sample"] is True
    salt = bytes.fromhex(receipt["salt"])
    assert receipt["request_commitment"] == hashlib.sha256(salt + body).hexdigest()
    assert receipt["response_sha256"] == hashlib.sha256(received).hexdigest()
    assert receipt["served_model"] == "demo" and receipt["provider"] == "demo"
    for data in (body, received):
        digest = hashlib.sha256(data).digest()
        for text in public:
            assert digest.hex() not in text and base64.b64encode(digest).decode() not in text
    assert not any(salt.hex() in text for text in public)
    checkpoint = note.verify_checkpoint(head["checkpoint"], [note.parse_vkey(vkey)])
    assert checkpoint.size == index + 1
    proof = entry["inclusion_proof"]
    merkle.verify_inclusion(
        index,
        proof["tree_size"],
        receipt_leaf_hash(receipt),
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root_hash"]),
    )


async def public_texts(gateway: Gateway, index: int) -> list[str]:
    """Everything the attestation and activity endpoints say, as text."""
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_key}"}
    ) as client:
        paths = (
            "/attestation",
            "/attestation/transparency",
            "/attestation/audit/head",
            "/attestation/receipts/head",
            f"/attestation/audit/{index}",
            f"/attestation/receipts/{index}",
            "/v1/activity",
            "/metrics",
        )
        return [(await client.get(path)).text for path in paths]


async def test_the_canary_is_nowhere(
    sampled: Gateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-" + secrets.token_hex(16)
    async with httpx.AsyncClient(
        base_url=sampled.url, timeout=30, headers={"Authorization": f"Bearer {sampled.admin_key}"}
    ) as client:
        for model, stream in (
            ("demo", False),
            ("demo", True),
            ("fake/echo", False),
            ("fake/slow:3:0", True),
        ):
            reply = await client.post(
                "/v1/chat/completions",
                json={
                    "model": model,
                    "stream": stream,
                    "messages": [{"role": "user", "content": f"secret {canary} here"}],
                },
            )
            assert reply.status_code == 200
        public = [
            await client.get(path)
            for path in (
                "/attestation",
                "/attestation/verifying-key",
                "/attestation/transparency",
                "/attestation/transparency/head",
                "/attestation/audit/head",
                "/attestation/audit/0",
                "/attestation/audit/3",
                "/v1/audit/samples",
                "/v1/activity",
                "/v1/activity/stats",
                "/v1/credits",
                "/metrics",
            )
        ]
    assert all(r.status_code in (200, 404) for r in public)
    for response in public:
        assert canary not in response.text
    data_dir = sampled.settings.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
    assert canary not in caplog.text
