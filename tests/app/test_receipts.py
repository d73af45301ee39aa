"""The receipt stage in process, on trio's mock clock: every admitted request gets a
signed receipt of exactly what happened — the bytes the client was handed, every attempt,
usage, price and cost as settled — written with the settlement (a body) or after the last
byte (a stream), never before a stream's bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import trio

from saferouter.config import Settings
from saferouter.errors import ApiError
from saferouter.gateway.dialects.chat import CHAT
from saferouter.gateway.pipeline import Reply
from saferouter.gateway.receipts import RECEIPT_HEADER, SAMPLE_HEADER
from saferouter.storage import ActivityFilter, NewReceipt, ReceiptState
from saferouter.storage.memory import MemoryStore
from saferouter.translog import merkle
from saferouter.translog.receipt import receipt_bytes, verify_receipt_signature

from .pipeline_harness import (
    EPOCH_S,
    RECEIPT_LOG,
    Harness,
    fake_model,
    read_all,
    running_pipeline,
    with_models,
)
from .stores import leaves


async def receipt_of(p: Harness, receipt_id: str) -> dict[str, Any]:
    """The stored receipt, after checking its signature, leaf and log entry."""
    stored = await p.store.receipt(receipt_id)
    assert stored is not None and stored.state is ReceiptState.DONE
    assert stored.body is not None and stored.signature is not None
    receipt: dict[str, Any] = json.loads(stored.body)
    assert receipt_bytes(receipt) == stored.body  # the stored bytes are the canonical ones
    notary = p.ports.notary
    assert notary is not None
    verify_receipt_signature(receipt, stored.signature, bytes.fromhex(notary.identity_hex))
    assert stored.log_index is not None
    tree = await leaves(p.store, RECEIPT_LOG)
    assert tree[stored.log_index] == merkle.leaf_hash(stored.body)
    return receipt


def quiet(settings: Settings) -> Settings:
    """No audit samples: the draw is random at any other rate than 0 or 1."""
    return attrs.evolve(settings, audit_rate_ppm=0)


def chains(settings: Settings) -> Settings:
    """``failing`` (503 at provider fake) falls back to ``other`` (provider fake2);
    ``hedged`` starts ``other`` after 150 ms without a first byte."""
    return with_models(
        quiet(settings),
        other=fake_model(settings, "other", "ok", provider="fake2"),
        failing=fake_model(settings, "failing", "status:503", fallbacks=("other",)),
        hedged=fake_model(
            settings, "hedged", "slowstart:3000", hedge_after_ms=150, fallbacks=("other",)
        ),
    )


async def test_a_body_is_receipted_before_the_reply_returns(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("fake/ok")
        receipt_id = reply.headers[RECEIPT_HEADER]
        assert receipt_id.startswith("rcpt_") and len(receipt_id) == 5 + 24
        assert SAMPLE_HEADER not in reply.headers
        receipt = await receipt_of(p, receipt_id)  # no wait: written with the settlement
        salt = bytes.fromhex(receipt["salt"])
        assert len(salt) == 32
        assert receipt["request_commitment"] == hashlib.sha256(salt + p.sent[-1]).hexdigest()
        assert receipt["response_sha256"] == hashlib.sha256(reply.body).hexdigest()
        assert (receipt["response_bytes"], receipt["status"], receipt["stream"]) == (
            len(reply.body),
            200,
            False,
        )
        assert (receipt["requested_model"], receipt["served_model"], receipt["provider"]) == (
            "fake/ok",
            "fake/ok",
            "fake",
        )
        assert receipt["attempts"] == [
            {
                "number": 1,
                "provider": "fake",
                "model": "fake/ok",
                "outcome": "won",
                "status": 200,
                "byok": False,
            }
        ]
        [entry] = await p.store.activity(ActivityFilter())
        assert json.loads(reply.body)["usage"] == receipt["usage"]  # as the provider said
        assert (receipt["cost_micro_usd"], receipt["estimated"]) == (entry.cost_micro_usd, False)
        assert receipt["cost_micro_usd"] > 0 and receipt["prices"]["model"] == "fake/ok"
        assert receipt["time"] == int(EPOCH_S) and receipt["outcome"] == "ok"
        key = (await p.store.list_keys())[-1]
        assert receipt["key_id"] == key.id and receipt["request_id"] == entry.request_id
        assert receipt["tls_spki_sha256"] is None and receipt["audit_sample"] is False


async def test_a_stream_is_pending_until_its_last_byte_and_hashed_as_relayed(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("fake/slow:3:1000", stream=True)
        assert reply.stream is not None
        receipt_id = reply.headers[RECEIPT_HEADER]
        seen = [await reply.stream.__anext__()]
        pending = await p.store.receipt(receipt_id)
        assert pending is not None and pending.state is ReceiptState.PENDING
        body = b"".join(seen) + await read_all(reply)
        receipt = await receipt_of(p, receipt_id)
        assert body.endswith(b"data: [DONE]\n\n")
        assert receipt["response_sha256"] == hashlib.sha256(body).hexdigest()
        assert (receipt["response_bytes"], receipt["stream"]) == (len(body), True)
        [entry] = await p.store.activity(ActivityFilter())
        assert receipt["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        assert receipt["cost_micro_usd"] == entry.cost_micro_usd > 0


class HeldReceipts(MemoryStore):
    """The memory store, with receipt writes held until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()
        self.waiting = 0

    async def save_receipt(self, receipt: NewReceipt) -> int:
        self.waiting += 1
        await self.release.wait()
        return await super().save_receipt(receipt)


async def test_a_held_receipt_write_delays_no_byte_of_a_stream(
    tmp_path: Path, autojump_clock: object
) -> None:
    held = HeldReceipts()
    async with running_pipeline(tmp_path, quiet, store=held) as p:
        reply = await p.send("fake/slow:3:1000", stream=True)
        assert reply.stream is not None
        chunks: list[bytes] = []
        ended = trio.Event()

        async def client() -> None:
            assert reply.stream is not None
            async for chunk in reply.stream:
                chunks.append(chunk)
            ended.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            try:
                await trio.sleep(100)  # far past the stream's 3 s
                # every byte was handed over, [DONE] included, while the write is held
                assert b"".join(chunks).endswith(b"data: [DONE]\n\n") and held.waiting == 1
                assert not ended.is_set()  # only the end of the body waits for the receipt
            finally:
                held.release.set()  # (a shielded write left held would hang the test)
        await reply.stream.aclose()
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["response_sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()


async def test_a_fallback_receipt_names_both_providers(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        reply = await p.send("failing")
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert [
            (a["provider"], a["model"], a["outcome"], a["status"]) for a in receipt["attempts"]
        ] == [
            ("fake", "failing", "error", 503),
            ("fake2", "other", "won", 200),
        ]
        assert (receipt["served_model"], receipt["provider"]) == ("other", "fake2")
        assert receipt["prices"]["model"] == "other"


async def test_a_hedged_receipt_names_the_loser_too(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path, chains) as p:
        reply = await p.send("hedged")
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert [(a["provider"], a["outcome"], a["status"]) for a in receipt["attempts"]] == [
            ("fake", "cancelled", None),
            ("fake2", "won", 200),
        ]


async def test_an_error_after_admission_is_receipted_over_its_error_body(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        error = await p.error("fake/status:503")
        sent = Reply.of_error(error, CHAT).body  # what the client is sent
        receipt = await receipt_of(p, error.headers[RECEIPT_HEADER])
        assert receipt["response_sha256"] == hashlib.sha256(sent).hexdigest()
        assert (receipt["status"], receipt["outcome"], receipt["cost_micro_usd"]) == (
            503,
            "error",
            0,
        )
        assert (receipt["served_model"], receipt["usage"], receipt["prices"]) == (None, None, None)
        assert [a["status"] for a in receipt["attempts"]] == [503]


async def test_refusals_before_admission_get_no_receipt(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        poor = await p.new_key(credits_micro_usd=0)
        refused: ApiError = await p.error("fake/ok", key=poor)
        assert refused.status == 402 and RECEIPT_HEADER not in refused.headers
        assert await leaves(p.store, RECEIPT_LOG) == []


async def test_a_stream_the_client_leaves_is_receipted_over_what_it_was_handed(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("fake/stall:2", stream=True)
        assert reply.stream is not None
        first = await reply.stream.__anext__()
        await reply.stream.aclose()
        receipt = await receipt_of(p, reply.headers[RECEIPT_HEADER])
        assert receipt["response_sha256"] == hashlib.sha256(first).hexdigest()
        assert (receipt["status"], receipt["outcome"], receipt["estimated"]) == (
            499,
            "client_closed",
            True,
        )


async def test_the_client_leaving_before_a_byte_is_receipted_too(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, quiet) as p:
        with trio.move_on_after(1):
            await p.send("fake/slowstart:5000")
        [stored] = await p.store.sampled_receipts(RECEIPT_LOG, 0, 10) or [None]  # not a sample
        assert stored is None
        [leaf] = await leaves(p.store, RECEIPT_LOG)
        (entry,) = await p.store.log_entries(RECEIPT_LOG, 0, 1)
        assert entry.body is not None and merkle.leaf_hash(entry.body) == leaf
        receipt = json.loads(entry.body)
        assert (receipt["status"], receipt["outcome"], receipt["response_bytes"]) == (
            499,
            "client_closed",
            0,
        )
        assert receipt["attempts"][0]["outcome"] == "cancelled"  # it had the prompt


async def test_every_request_is_an_audit_sample_at_rate_1_and_none_at_0(
    tmp_path: Path, autojump_clock: object
) -> None:
    def always(settings: Settings) -> Settings:
        return attrs.evolve(settings, audit_rate_ppm=1_000_000)

    async with running_pipeline(tmp_path, always) as p:
        reply = await p.send("fake/ok")
        assert reply.headers[SAMPLE_HEADER] == reply.headers[RECEIPT_HEADER]
        [sample] = await p.store.sampled_receipts(RECEIPT_LOG, 0, 10)
        assert sample.receipt_id == reply.headers[RECEIPT_HEADER]
        assert (await receipt_of(p, sample.receipt_id))["audit_sample"] is True
    async with running_pipeline(tmp_path, quiet) as p:
        reply = await p.send("fake/ok")
        assert SAMPLE_HEADER not in reply.headers
        assert await p.store.sampled_receipts(RECEIPT_LOG, 0, 10) == []


async def test_receipts_off_means_no_header_and_no_log(
    tmp_path: Path, autojump_clock: object
) -> None:
    def off(settings: Settings) -> Settings:
        return attrs.evolve(settings, receipts=False)

    async with running_pipeline(tmp_path, off) as p:
        reply = await p.send("fake/ok")
        assert reply.status == 200 and RECEIPT_HEADER not in reply.headers
        assert await leaves(p.store, RECEIPT_LOG) == []
