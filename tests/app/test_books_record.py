"""What ``RequestBooks`` writes of a request into its activity entries (issue 15): the
API spoken, the calling app and routing's note on every entry of the request — a
failed attempt's, a refusal's, the one of a request no attempt served — and the
response id and finish reason on the serving attempt's alone. On the memory store,
with the shipped catalog's plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from saferouter.clock import TrioClock
from saferouter.errors import InsufficientQuota
from saferouter.gateway.books import RequestBooks
from saferouter.gateway.dialect import ApiRequest
from saferouter.gateway.dialects.chat import parse_chat_request
from saferouter.gateway.routing import candidates, plan_attempts
from saferouter.storage import ActivityFilter, ActivityOutcome
from saferouter.storage.memory import MemoryStore

from ..servers import gateway_settings

BODY = b'{"model": "chain-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}'
TOLD = {
    "api": "responses",
    "app_title": "My App",
    "app_referer": "https://my.app",
    "note": "skipped models: foo (not in the catalog)",
}


async def admitted(
    tmp_path: Path,
    store: MemoryStore,
    *,
    credits: int | None = None,
    request: ApiRequest | None = None,
    body: bytes = BODY,
) -> RequestBooks:
    """Books admitted for ``chain-a`` (failing over to ``chain-b``), told :data:`TOLD`;
    ``request`` (parsed from ``body``) defaults to :data:`BODY` as chat."""
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9")
    key = await store.create_key(
        name="k", role="user", key_hash="h", prefix="p", credits_micro_usd=credits
    )
    chain = candidates(settings.catalog, settings.catalog.resolve("chain-a"), None)
    clock = TrioClock()
    options: dict[str, Any] = TOLD
    return await RequestBooks.admit(
        store,
        key=key.identity(),
        request_id="req_1",
        request=request or parse_chat_request(body),
        body=body,
        plans=plan_attempts(chain, settings.endpoints, {}),
        started=clock.now(),
        clock=clock,
        requested_model="chain-a",
        **options,
    )


def told(entry: Any) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in TOLD}


async def test_every_entry_says_the_api_app_and_note_the_serving_one_its_response(
    tmp_path: Path,
) -> None:
    books = await admitted(tmp_path, MemoryStore())
    failed, serving = books.plans
    books.record_attempt(
        number=1,
        plan=failed,
        status=503,
        outcome=ActivityOutcome.ERROR,
        error_type="upstream_error",
        started=books.started,
        first_byte_at=None,
        ended_at=None,
    )
    books.serve(2, serving)
    await books.settle(
        status=200, outcome=ActivityOutcome.OK, response_id="resp_9", finish_reason="completed"
    )
    assert books.store is not None
    second, first = await books.store.activity(ActivityFilter())
    assert told(first) == told(second) == TOLD
    assert (first.response_id, first.finish_reason) == (None, None)
    assert (second.response_id, second.finish_reason) == ("resp_9", "completed")


async def test_a_request_no_attempt_served_says_them_too(tmp_path: Path) -> None:
    books = await admitted(tmp_path, MemoryStore())
    await books.settle(status=502, outcome=ActivityOutcome.ERROR, error_type="upstream_error")
    assert books.store is not None
    (only,) = await books.store.activity(ActivityFilter())
    assert only.attempt == 0 and told(only) == TOLD


async def test_a_refusals_entry_says_them(tmp_path: Path) -> None:
    store = MemoryStore()
    with pytest.raises(InsufficientQuota):
        await admitted(tmp_path, store, credits=0)
    (refused,) = await store.activity(ActivityFilter())
    assert refused.outcome is ActivityOutcome.REJECTED and told(refused) == TOLD
