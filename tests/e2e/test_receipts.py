"""Receipts on a live gateway: the header on every admitted request, ``GET
/v1/receipts/{id}`` (who may read it, pending, lost), its signature under the attested
identity, its inclusion proof under a checkpoint signed for ``<audience>/receipts``, and
the response hash against the exact bytes a raw HTTP client received."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from saferouter.translog import merkle, note
from saferouter.translog.receipt import receipt_leaf_hash, verify_receipt_signature

from ..processes import new_key, serving, spki_sha256
from ..servers import (
    FakeUpstream,
    Gateway,
    fake_upstream,
    gateway_settings,
    running_gateway,
    write_catalog,
)

RECEIPT = "x-saferouter-receipt"


async def receipt_json(url: str, key: str, receipt_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.get(
            f"/v1/receipts/{receipt_id}", headers={"Authorization": f"Bearer {key}"}
        )


async def verified(gateway: Gateway, key: str, receipt_id: str) -> dict[str, Any]:
    """The receipt, once its signature, identity and inclusion proof all hold."""
    answer = await receipt_json(gateway.url, key, receipt_id)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        identity = bytes.fromhex((await client.get("/attestation")).json()["identity"])
    receipt: dict[str, Any] = data["receipt"]
    verify_receipt_signature(receipt, base64.b64decode(data["signature"]), identity)
    assert receipt["identity"] == identity.hex()
    origin = f"{gateway.settings.audience}/receipts"  # pinned, not read from the answer
    assert data["origin"] == origin
    checkpoint = note.verify_checkpoint(
        data["checkpoint"], [note.ed25519_verifier(origin, identity)]
    )
    assert checkpoint.size == data["tree_size"]
    merkle.verify_inclusion(
        data["log_index"],
        checkpoint.size,
        receipt_leaf_hash(receipt),
        [bytes.fromhex(h) for h in data["inclusion_proof"]],
        checkpoint.root_hash,
    )
    return receipt


@pytest.mark.parametrize("stream", [False, True])
async def test_a_receipt_covers_the_exact_bytes_a_raw_client_received(
    gateway: Gateway, stream: bool
) -> None:
    user = await gateway.create_key()
    model = "fake/slow:3:0" if stream else "fake/ok"
    body = json.dumps(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {user}", "Content-Type": "application/json"},
        ) as response:
            received = b"".join([chunk async for chunk in response.aiter_raw()])
    receipt = await verified(gateway, user, response.headers[RECEIPT])
    assert receipt["response_sha256"] == hashlib.sha256(received).hexdigest()
    assert receipt["response_bytes"] == len(received)
    salt = bytes.fromhex(receipt["salt"])
    assert receipt["request_commitment"] == hashlib.sha256(salt + body).hexdigest()
    assert (receipt["stream"], receipt["provider"], receipt["status"]) == (stream, "fake", 200)


async def test_the_public_log_serves_the_leaf_and_its_proof(gateway: Gateway) -> None:
    reply = await chat(gateway, gateway.admin_key, "fake/ok")
    receipt = await verified(gateway, gateway.admin_key, reply.headers[RECEIPT])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        head = await client.get("/attestation/receipts/head")
        leaf = (await client.get("/attestation/receipts/0")).json()
        alias = (await client.get("/attestation/audit/head")).json()
        proof = (await client.get("/attestation/receipts/proof?first=0")).json()
        missing = await client.get("/attestation/receipts/1")
    assert head.headers["access-control-allow-origin"] == "*"
    assert head.json()["origin"] == f"{gateway.settings.audience}/receipts" == alias["origin"]
    assert leaf["leaf_hash"] == receipt_leaf_hash(receipt).hex()
    for secret in (receipt["salt"], receipt["response_sha256"], receipt["receipt_id"]):
        assert secret not in json.dumps(leaf)  # the leaf only, never the receipt
    inclusion = leaf["inclusion_proof"]
    merkle.verify_inclusion(
        0,
        inclusion["tree_size"],
        receipt_leaf_hash(receipt),
        [bytes.fromhex(h) for h in inclusion["hashes"]],
        bytes.fromhex(inclusion["root_hash"]),
    )
    assert proof["second"] == head.json()["tree_size"] == 1
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "entry_not_found"


async def chat(gateway: Gateway, key: str, model: str) -> Any:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    async with client:
        return await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )


async def test_a_fallback_and_a_hedge_list_both_providers_with_the_ledgers_cost(
    gateway: Gateway,
) -> None:
    user = await gateway.create_key(credits_micro_usd=1_000_000)
    for model, outcomes in (
        ("chain-a", [("fake", "chain-a", "error", 503), ("fake2", "chain-b", "won", 200)]),
        ("hedged", [("fake", "hedged", "cancelled", None), ("fake2", "chain-b", "won", 200)]),
    ):
        reply = await chat(gateway, user, model)
        receipt = await verified(gateway, user, reply.headers[RECEIPT])
        attempts = [
            (a["provider"], a["model"], a["outcome"], a["status"]) for a in receipt["attempts"]
        ]
        assert attempts == outcomes
        served = reply.parse()
        assert receipt["usage"] == served.usage.model_dump(exclude_none=True)
        [entry] = [
            e
            for e in (await gateway.store.activity_since(0, None))
            if e.request_id == receipt["request_id"] and e.outcome == "ok"
        ]
        assert (receipt["cost_micro_usd"], receipt["estimated"]) == (entry.cost_micro_usd, False)
        assert receipt["prices"]["model"] == "chain-b" and receipt["cost_micro_usd"] > 0
    books = await gateway.store.books(receipt["key_id"])
    assert books.spent_micro_usd == sum(
        e.cost_micro_usd for e in await gateway.store.activity_since(0, receipt["key_id"])
    )


async def test_only_its_key_and_admins_read_a_receipt(gateway: Gateway) -> None:
    owner, other = await gateway.create_key(), await gateway.create_key()
    receipt_id = (await chat(gateway, owner, "fake/ok")).headers[RECEIPT]
    theirs = await receipt_json(gateway.url, other, receipt_id)
    unknown = await receipt_json(gateway.url, other, "rcpt_" + "0" * 24)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "receipt_not_found"
    assert (await receipt_json(gateway.url, owner, receipt_id)).status_code == 200
    assert (await receipt_json(gateway.url, gateway.admin_key, receipt_id)).status_code == 200
    nobody = await receipt_json(gateway.url, "sk-sr-nope", receipt_id)
    assert nobody.status_code == 401


async def test_an_error_after_admission_has_a_receipt_over_its_error_body(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "fake/status:503", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {gateway.admin_key}"},
        )
        refused = await client.post(
            "/v1/chat/completions", json={"model": "fake/ok", "messages": []}
        )
    assert response.status_code == 503
    receipt = await verified(gateway, gateway.admin_key, response.headers[RECEIPT])
    assert receipt["response_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert (receipt["status"], receipt["outcome"]) == (503, "error")
    assert refused.status_code == 401 and RECEIPT not in refused.headers


async def test_audit_samples_are_the_sampled_receipts(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    for rate, expected in (("1", 1), ("0", 0)):
        (tmp_path / rate).mkdir()
        settings = gateway_settings(tmp_path / rate, upstream.url, SAFEROUTER_AUDIT_RATE=rate)
        async with running_gateway(settings) as gw:
            reply = await chat(gw, gw.admin_key, "fake/ok")
            async with httpx.AsyncClient(base_url=gw.url) as client:
                samples = await client.get(
                    "/v1/audit/samples", headers={"Authorization": f"Bearer {gw.admin_key}"}
                )
            data = samples.json()["data"]
            assert len(data) == expected
            if expected:
                assert reply.headers["x-saferouter-audit-sample"] == reply.headers[RECEIPT]
                assert data[0]["receipt_id"] == reply.headers[RECEIPT]
                assert data[0]["receipt"]["audit_sample"] is True and data[0]["index"] == 0


@asynccontextmanager
async def open_stream(url: str, key: str, model: str) -> AsyncIterator[tuple[str, Any]]:
    """A stream whose first chunk has arrived: its receipt id and the rest of its chunks."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            chunks = response.aiter_raw()
            await chunks.__anext__()
            yield response.headers[RECEIPT], chunks


async def test_a_stream_is_pending_on_every_worker_until_it_ends(tmp_path: Path) -> None:
    """Two server processes on one database (as workers, or replicas, share one; a data
    dir serves one server at a time): a stream open on one answers 409 on the other, and
    200 on both once it has ended."""
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        data, other = tmp_path / "data", tmp_path / "other"
        shared = ("--database", f"sqlite:///{tmp_path / 'shared.db'}")
        key = new_key(data, "--name", "u", *shared)
        options = ("--config", str(catalog), *shared)
        env = {"FAKE_API_KEY": "k"}
        with serving(data, *options, env=env) as first, serving(other, *options, env=env) as second:
            async with open_stream(first.url, key, "fake/slow:4:300") as (receipt_id, chunks):
                for server in (first, second):  # the stream is open
                    pending = await receipt_json(server.url, key, receipt_id)
                    assert pending.status_code == 409, pending.text
                    assert pending.json()["error"]["code"] == "receipt_pending"
                async for _ in chunks:
                    pass
            for server in (first, second):
                assert (await receipt_json(server.url, key, receipt_id)).status_code == 200


async def test_a_receipt_in_flight_at_a_sigkill_is_lost_after_the_restart(
    tmp_path: Path,
) -> None:
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        data = tmp_path / "data"
        key = new_key(data, "--name", "u", "--credits", "5")
        options = ("--config", str(catalog))
        env = {"FAKE_API_KEY": "k"}
        with serving(data, *options, env=env) as served:
            async with open_stream(served.url, key, "fake/stall:1") as (receipt_id, chunks):
                pending = await receipt_json(served.url, key, receipt_id)
                assert pending.status_code == 409
                os.kill(served.process.pid, signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    async for _ in chunks:
                        pass
        with serving(data, *options, env=env) as restarted:
            lost = await receipt_json(restarted.url, key, receipt_id)
        assert lost.status_code == 410 and lost.json()["error"]["code"] == "receipt_lost"


def test_a_receipt_names_the_tls_key_it_was_served_over(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = new_key(data, "--name", "u")
    with serving(data, "--tls") as https:
        with httpx.Client(base_url=https.url, verify=https.trust(), timeout=30) as client:
            chat = client.post(
                "/v1/chat/completions",
                json={"model": "demo-mini", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {key}"},
            )
            answer = client.get(
                f"/v1/receipts/{chat.headers[RECEIPT]}",
                headers={"Authorization": f"Bearer {key}"},
            )
    assert answer.status_code == 200, answer.text
    assert answer.json()["receipt"]["tls_spki_sha256"] == spki_sha256(https.certificate)
