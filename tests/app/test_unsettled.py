"""A settlement the store refuses (the database away at the moment a request ends): the
client is not told the request completed, and the worker writes it once the store
answers again — a stream's as it was (what was relayed is billed), a body's, which never
went out, as the 503 it was (saferouter/gateway/unsettled.py). On PostgreSQL stopped for real:
tests/e2e/test_database_faults.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from saferouter.errors import StorageError, StorageUnavailable
from saferouter.gateway.unsettled import Unsettled
from saferouter.storage import ActivityFilter, Settlement
from saferouter.storage.memory import MemoryStore

from .pipeline_harness import Harness, running_pipeline


@attrs.define
class OutageStore:
    """A Store whose database is away while ``down``: settlements fail as PostgreSQL's do
    (StorageUnavailable); everything else is the memory store's."""

    store: MemoryStore = attrs.Factory(MemoryStore)
    down: bool = False

    async def settle(self, settlement: Settlement) -> None:
        if self.down:
            raise StorageUnavailable("write: the database cannot be reached (PoolTimeout)")
        await self.store.settle(settlement)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def books_of(p: Harness) -> tuple[int, int, int]:
    """The harness key's (reserved, spent, unbalanced keys)."""
    key = (await p.store.list_keys())[-1]
    books = await p.store.books(key.id)
    return books.reserved_micro_usd, books.spent_micro_usd, len(await p.store.check_books())


async def test_a_stream_whose_settlement_fails_ends_in_an_error_and_is_settled_later(
    tmp_path: Path, autojump_clock: object
) -> None:
    outage = OutageStore()
    async with running_pipeline(tmp_path, store=outage) as p:  # type: ignore[arg-type]
        reply = await p.send("fake/slow:3:1000", stream=True)
        assert reply.stream is not None
        outage.down = True  # the database goes while the stream is relayed
        body = b"".join([chunk async for chunk in reply.stream])
        await reply.stream.aclose()
        # (1) no [DONE]: the client is not told it completed; an OpenAI-shaped error instead
        assert not body.endswith(b"data: [DONE]\n\n")
        error = json.loads(body.rstrip().rsplit(b"\n\n", 1)[-1].removeprefix(b"data: "))
        assert error["error"]["code"] == "storage_unavailable"
        assert set(error["error"]) == {"message", "type", "param", "code"}
        # (2) the reservation is held meanwhile, the settlement kept
        assert len(p.ports.unsettled) == 1
        assert (await books_of(p))[0] > 0
        # (3) while the store is away, writing it fails and keeps it
        with pytest.raises(StorageUnavailable):
            await p.ports.unsettled.write(outage)  # type: ignore[arg-type]
        assert len(p.ports.unsettled) == 1
        # (4) back: written as it was: released, and what was relayed charged
        outage.down = False
        assert await p.ports.unsettled.write(outage) == 1  # type: ignore[arg-type]
        assert len(p.ports.unsettled) == 0
        [entry] = await p.store.activity(ActivityFilter(limit=10))
        assert (entry.status, entry.outcome, entry.completion_tokens) == (200, "ok", 2)
        assert entry.cost_micro_usd > 0
        assert await books_of(p) == (0, entry.cost_micro_usd, 0)


async def test_a_body_whose_settlement_fails_is_a_503_and_is_written_off_later(
    tmp_path: Path, autojump_clock: object
) -> None:
    outage = OutageStore()
    async with running_pipeline(tmp_path, store=outage) as p:  # type: ignore[arg-type]
        outage.down = True  # admitted before; the answer came, its settlement cannot be written
        with pytest.raises(StorageUnavailable):
            await p.send("fake/ok")
        assert len(p.ports.unsettled) == 1 and (await books_of(p))[0] > 0
        # back: the body never went out, so nothing is charged; it is recorded as the
        # 503 its client got
        outage.down = False
        assert await p.ports.unsettled.write(outage) == 1  # type: ignore[arg-type]
        assert await books_of(p) == (0, 0, 0)
        [entry] = await p.store.activity(ActivityFilter(limit=10))
        assert (entry.status, entry.outcome, entry.error_type) == (
            503,
            "error",
            "storage_unavailable",
        )


def test_what_is_kept_is_bounded() -> None:
    unsettled = Unsettled(max_kept=2)
    for i in range(3):
        unsettled.keep(settlement(f"req_{i}"))
    unsettled.keep(settlement("req_0"))  # one kept already: replaced, not counted
    assert (len(unsettled), unsettled.dropped) == (2, 1)


def settlement(request_id: str) -> Settlement:
    return Settlement(
        key_id="key_x",
        request_id=request_id,
        reserved_micro_usd=1,
        cost_micro_usd=0,
        tokens=0,
        attempts=(),
        now=0.0,
    )


@attrs.define
class RefusingStore:
    """A Store that refuses one settlement for good (as PostgreSQL refuses a string with
    a NUL): a StorageError that is not the database being away."""

    refused_id: str
    store: MemoryStore = attrs.Factory(MemoryStore)
    written: list[str] = attrs.Factory(list)

    async def settle(self, settlement: Settlement) -> None:
        if settlement.request_id == self.refused_id:
            raise StorageError("write: the store refused this settlement")
        self.written.append(settlement.request_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_settlement_the_store_refuses_holds_back_none_of_the_others() -> None:
    unsettled = Unsettled()
    for request_id in ("req_bad", "req_1", "req_2"):
        unsettled.keep(settlement(request_id))
    store = RefusingStore("req_bad")
    with pytest.raises(StorageError):
        await unsettled.write(store)  # type: ignore[arg-type]
    assert store.written == ["req_1", "req_2"]
    assert len(unsettled) == 1  # the refused one is kept, never dropped
    store.written.clear()
    with pytest.raises(StorageUnavailable):
        await unsettled.write(OutageStore(down=True))  # type: ignore[arg-type]
    assert len(unsettled) == 1
