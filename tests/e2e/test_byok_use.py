"""Bring your own key against real ``saferouter serve`` processes (issue 13 §3–§4): keys
sealed to the gateway's attested ``byok_public_key`` and uploaded through the real
``PUT /v1/byok/{provider}``, requests through the real ``openai`` SDK (in a thread: it
blocks, and the fake upstream shares this trio loop), the fake upstream recording every
``Authorization`` it is sent.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
import trio

from saferouter.accounting import Usage, cost_micro_usd
from saferouter.byok import sealing
from saferouter.keys import hash_key

from ..processes import Served, new_key, serving
from ..servers import FAKE_PRICE, USAGE, FakeUpstream, fake_upstream, write_catalog

OPERATOR = "sk-operator-" + "0" * 24  # the gateway's FAKE_API_KEY
T = TypeVar("T")


def canary() -> str:
    """A provider key no other test uses, so finding it anywhere means it leaked."""
    return "sk-canary-" + secrets.token_hex(16)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def authorizations(upstream: FakeUpstream) -> list[str]:
    """The ``Authorization`` of every request the fake provider received, in order."""
    return [r["headers"].get("Authorization", "") for r in upstream.requests]


async def upload(url: str, key: str, provider_key: str, *, fallback: bool = False) -> Any:
    """Seal ``provider_key`` to the gateway's attested BYOK key, as a client does, and
    PUT it as ``key``'s own key for the fake provider; the stored key's description."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        public_key = bytes.fromhex((await client.get("/attestation")).json()["byok_public_key"])
        binding = sealing.Binding(hash_key(key), "fake")
        sealed = base64.b64encode(sealing.seal(public_key, provider_key, binding)).decode()
        body = {"sealed_key": sealed, "byok_fallback": fallback}
        response = await client.put("/v1/byok/fake", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def sdk(served: Served, key: str, **options: Any) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=served.url + "/v1", api_key=key, timeout=30, **({"max_retries": 0} | options)
    )
    try:
        yield client
    finally:
        client.close()


async def in_thread(call: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(call)


def chat(client: openai.OpenAI, model: str, *, stream: bool = False) -> str:
    """The answer's text (a stream's, joined)."""
    messages: Any = [{"role": "user", "content": "hi"}]
    if not stream:
        completion = client.chat.completions.create(model=model, messages=messages)
        return completion.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def activity(url: str, key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get("/v1/activity", headers=bearer(key))
    assert response.status_code == 200
    return sorted(response.json()["data"], key=lambda e: e["id"])


Start = Callable[[], AbstractContextManager[Served]]


@asynccontextmanager
async def byok_gateway(
    tmp_path: Path, *, fee_percent: str = "0", workers: int = 1
) -> AsyncIterator[tuple[FakeUpstream, Path, Start]]:
    """The fake provider and a gateway's data dir, its ``--config`` catalog with this
    ``byok_fee_percent``; yields (upstream, data dir, start): ``with start() as served``
    serves it (again, after a restart, from the same data dir and catalog file)."""
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        text = catalog.read_text().replace(
            'byok_fee_percent = "0"', f'byok_fee_percent = "{fee_percent}"'
        )
        catalog.write_text(text)
        args = ("--config", str(catalog), "--workers", str(workers))

        def start() -> AbstractContextManager[Served]:
            return serving(tmp_path / "data", *args, env={"FAKE_API_KEY": OPERATOR})

        yield upstream, tmp_path / "data", start


async def test_a_refused_own_key_ends_the_request_unless_fallback_allows_the_operators(
    tmp_path: Path,
) -> None:
    own = canary()
    async with byok_gateway(tmp_path) as (upstream, data, start):
        user, other = new_key(data, "--name", "byok"), new_key(data, "--name", "other")
        admin = new_key(data, "--name", "ops", "--admin")  # /metrics is admin-only
        with start() as served:
            await upload(served.url, user, own)
            upstream.refused_keys.add(own)
            with sdk(served, user) as client, pytest.raises(openai.PermissionDeniedError) as no:
                await in_thread(lambda: chat(client, "fake/anything"))
            assert no.value.status_code == 403 and no.value.code == "byok_key_rejected"
            assert sealing.fingerprint(own) in no.value.message and own not in str(no.value)
            assert authorizations(upstream) == [f"Bearer {own}"]  # not the operator's key
            # the refusal opened no circuit: another key's request right after is served
            with sdk(served, other) as client:
                assert await in_thread(lambda: chat(client, "fake/anything")) == "fake answer"
            assert authorizations(upstream)[-1] == f"Bearer {OPERATOR}"
            async with httpx.AsyncClient(base_url=served.url, headers=bearer(admin)) as raw:
                metrics = (await raw.get("/metrics")).text
            assert 'saferouter_circuit_state{key="fake"} 0' in metrics

            await upload(served.url, user, own, fallback=True)  # now the operator may stand in
            upstream.requests.clear()
            with sdk(served, user) as client:
                assert await in_thread(lambda: chat(client, "fake/anything")) == "fake answer"
            assert authorizations(upstream) == [f"Bearer {own}", f"Bearer {OPERATOR}"]
            entries = await activity(served.url, user)
        assert [(e["byok"], e["outcome"], e["error_type"]) for e in entries] == [
            (True, "error", "byok_key_rejected"),  # no fallback: the request ended there
            (True, "error", "byok_key_rejected"),  # with fallback: the same model, then …
            (False, "ok", None),  # … with the operator's key, at the operator's price
        ]


async def test_an_own_key_is_billed_the_fee_and_a_key_without_credits_may_use_it(
    tmp_path: Path,
) -> None:
    async with byok_gateway(tmp_path, fee_percent="10") as (upstream, data, start):
        paying = new_key(data, "--name", "paying", "--credits", "1")
        with start() as served:
            await upload(served.url, paying, canary())
            with sdk(served, paying) as client:
                await in_thread(lambda: chat(client, "fake/x"))
            [entry] = await activity(served.url, paying)
            async with httpx.AsyncClient(base_url=served.url) as raw:
                credits = (await raw.get("/v1/credits", headers=bearer(paying))).json()
        used = Usage(prompt_tokens=USAGE["prompt_tokens"], output_tokens=USAGE["completion_tokens"])
        fee = cost_micro_usd(used, FAKE_PRICE.fee(1000))
        assert fee == 3 < cost_micro_usd(used, FAKE_PRICE) == 24  # 10 %, rounded up
        assert (entry["byok"], entry["cost_micro_usd"], credits["spent_micro_usd"]) == (
            True,
            fee,
            fee,
        )
    (tmp_path / "free").mkdir()
    async with byok_gateway(tmp_path / "free") as (upstream, data, start):
        broke = new_key(data, "--name", "broke", "--credits", "0")
        with start() as served:
            await upload(served.url, broke, own := canary())
            with sdk(served, broke) as client:
                assert await in_thread(lambda: chat(client, "fake/x")) == "fake answer"
                with pytest.raises(openai.APIStatusError) as refused:  # no own key for fake2
                    await in_thread(lambda: chat(client, "fake2/x"))
            assert refused.value.status_code == 402
            assert authorizations(upstream) == [f"Bearer {own}"]
            served_entry, refused_entry = await activity(served.url, broke)
        assert (served_entry["byok"], served_entry["cost_micro_usd"]) == (True, 0)
        assert (refused_entry["outcome"], refused_entry["error_type"]) == (
            "rejected",
            "insufficient_quota",
        )


async def test_a_key_sealed_for_another_build_is_a_409_naming_that_build(
    tmp_path: Path,
) -> None:
    own = canary()
    async with byok_gateway(tmp_path) as (upstream, data, start):
        user = new_key(data, "--name", "byok")
        with start() as served:
            added = await upload(served.url, user, own)
            async with httpx.AsyncClient(base_url=served.url) as raw:
                first = (await raw.get("/attestation")).json()["measurement"]
        assert added["sealed_for_measurement"] == first
        # the same data dir under another config: another build, another BYOK key pair
        catalog = tmp_path / "catalog.toml"
        fee = catalog.read_text().replace('byok_fee_percent = "0"', 'byok_fee_percent = "1"')
        catalog.write_text(fee)
        with start() as served:
            async with httpx.AsyncClient(base_url=served.url) as raw:
                second = (await raw.get("/attestation")).json()["measurement"]
            sent: list[httpx.Request] = []
            counted = httpx.Client(event_hooks={"request": [sent.append]})
            # the SDK's default retries: x-should-retry: false must stop them
            with sdk(served, user, max_retries=2, http_client=counted) as client:
                with pytest.raises(openai.ConflictError) as stale:
                    await in_thread(lambda: chat(client, "fake/x"))
        assert first != second and len(sent) == 1
        error = stale.value
        assert (error.status_code, error.code) == (409, "byok_key_sealed_to_other_build")
        assert error.response.headers["x-should-retry"] == "false"
        assert first in error.message and second in error.message
        assert upstream.requests == []  # nothing was sent with anyone's key
        assert json.loads(error.response.text)["error"]["type"] == "invalid_request_error"


async def test_a_sealed_key_copied_to_another_key_in_the_database_never_serves(
    tmp_path: Path,
) -> None:
    """The operator (or anyone who writes the database) copies a user's sealed key to a
    key of their own: the box names its owner, the copy's requests are refused before
    anything is sent, and the user's provider key is never used for them."""
    own = canary()
    async with byok_gateway(tmp_path) as (upstream, data, start):
        victim, thief = new_key(data, "--name", "victim"), new_key(data, "--name", "thief")
        with start() as served:
            await upload(served.url, victim, own)
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                copied = await client.put(  # the same bytes, uploaded by the thief: refused
                    "/v1/byok/fake",
                    json={"sealed_key": stored_box(data, victim)},
                    headers=bearer(thief),
                )
            assert copied.status_code == 400 and "another SafeRouter key" in copied.text
            copy_row(data, victim, thief)  # and written straight into the database
            with sdk(served, thief) as client, pytest.raises(openai.ConflictError) as refused:
                await in_thread(lambda: chat(client, "fake/anything"))
            assert refused.value.code == "byok_key_unusable"
            with sdk(served, victim) as client:
                assert await in_thread(lambda: chat(client, "fake/anything"))
    assert authorizations(upstream) == [f"Bearer {own}"]  # the victim's request only


def stored_box(data: Path, secret: str) -> str:
    """The key's sealed box as the database holds it, in base64."""
    with closing(sqlite3.connect(data / "saferouter.db")) as db:
        (box,) = db.execute(
            "SELECT sealed_key FROM byok_keys JOIN keys ON keys.id = byok_keys.key_id "
            "WHERE keys.key_hash = ?",
            (hash_key(secret),),
        ).fetchone()
    return base64.b64encode(box).decode()


def copy_row(data: Path, source: str, target: str) -> None:
    """Copy ``source``'s BYOK rows to ``target`` in the database, as its writer could."""
    with closing(sqlite3.connect(data / "saferouter.db")) as db, db:
        (target_id,) = db.execute(
            "SELECT id FROM keys WHERE key_hash = ?", (hash_key(target),)
        ).fetchone()
        db.execute(
            "INSERT INTO byok_keys (key_id, provider, sealed_key, sealed_to, measurement, "
            "fingerprint, fallback, created_at, updated_at) SELECT ?, b.provider, "
            "b.sealed_key, b.sealed_to, b.measurement, b.fingerprint, b.fallback, "
            "b.created_at, b.updated_at FROM byok_keys AS b JOIN keys ON keys.id = b.key_id "
            "WHERE keys.key_hash = ?",
            (target_id, hash_key(source)),
        )
