"""The chat pipeline in process, on trio's mock clock: hedging, first-byte timeouts,
the request deadline, breaker windows and rate windows, exactly and without sleeping.

These replace the e2e tests that waited out real cooldowns, windows and timeouts; what
only a server process shows (sockets, workers, signals) stays in tests/e2e.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import trio

from saferouter.config import BreakerPolicy, Settings, Timeouts
from saferouter.keys import hash_key
from saferouter.storage import ActivityEntry, ActivityFilter

from .pipeline_harness import EPOCH_S, Harness, fake_model, read_all, running_pipeline, with_models


async def attempts(harness: Harness) -> list[ActivityEntry]:
    """Every recorded attempt, oldest first."""
    entries = await harness.store.activity(ActivityFilter(limit=1000))
    return sorted(entries, key=lambda e: (e.created_at, e.request_id, e.attempt))


def hedging(settings: Settings) -> Settings:
    """``slow`` starts after 3 s; ``hedged`` over it hedges to ``quick`` after 150 ms."""
    return with_models(
        settings,
        hedged=fake_model(
            settings, "hedged", "slowstart:3000", hedge_after_ms=150, fallbacks=("quick",)
        ),
        quick=fake_model(settings, "quick", "ok"),
        failing=fake_model(settings, "failing", "status:503", fallbacks=("quick",)),
        silent=fake_model(settings, "silent", "slowstart:600000", fallbacks=("quick",)),
    )


async def test_a_body_is_served_settled_and_recorded(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        reply = await p.send("fake/ok")
        assert reply.status == 200 and reply.stream is None
        assert json.loads(reply.body)["choices"][0]["message"]["content"] == "hi"
        assert reply.headers["X-SafeRouter-Provider"] == "fake"
        [entry] = await attempts(p)
        assert (entry.outcome, entry.status, entry.prompt_tokens) == ("ok", 200, 3)
        assert entry.cost_micro_usd > 0 and entry.created_at == EPOCH_S
        books = await p.store.books((await p.store.list_keys())[-1].id)
        assert books.reserved_micro_usd == 0 and books.spent_micro_usd == entry.cost_micro_usd


async def test_a_stream_settles_before_its_done(tmp_path: Path, autojump_clock: object) -> None:
    async with running_pipeline(tmp_path) as p:
        reply = await p.send("fake/slow:3:1000", stream=True)
        assert reply.stream is not None
        seen: list[bytes] = []
        async for chunk in reply.stream:
            if b"[DONE]" in chunk:  # the books hold the request before the client sees the end
                [entry] = await attempts(p)
                assert (entry.outcome, entry.completion_tokens) == ("ok", 2)
            seen.append(chunk)
        await reply.stream.aclose()
        body = b"".join(seen)
        assert body.endswith(b"data: [DONE]\n\n") and b'"usage"' not in body  # not asked
        assert trio.current_time() == 3.0  # three chunks a second apart, on the mock clock
        assert p.upstream.closed == 1


async def test_a_hedge_starts_after_exactly_its_delay_and_the_loser_is_cancelled(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path, hedging) as p:
        reply = await p.send("hedged")
        assert reply.headers["X-SafeRouter-Model"] == "quick"
        assert trio.current_time() == 0.15  # not 3 s: the hedge won at 150 ms
        assert p.upstream.cancelled == 1  # the slow attempt was stopped, not left running
        first, second = await attempts(p)
        assert (first.served_model, first.outcome, first.error_type) == (
            "hedged",
            "cancelled",
            "lost_race",
        )
        assert (second.served_model, second.outcome) == ("quick", "ok")


async def test_a_silent_upstream_fails_over_at_the_first_byte_timeout(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        return attrs.evolve(hedging(settings), timeouts=Timeouts(first_byte_s=120))

    async with running_pipeline(tmp_path, configure) as p:
        reply = await p.send("silent", stream=True)
        await read_all(reply)
        assert trio.current_time() == 120.0
        first, second = await attempts(p)
        assert (first.outcome, first.error_type) == ("error", "upstream_first_byte_timeout")
        assert second.served_model == "quick"


async def test_the_request_deadline_bounds_every_attempt_together(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        chain = fake_model(settings, "two", "slowstart:600000", fallbacks=("silent",))
        deadlines = Timeouts(first_byte_s=100, request_deadline_s=150)
        return attrs.evolve(with_models(hedging(settings), two=chain), timeouts=deadlines)

    async with running_pipeline(tmp_path, configure) as p:
        error = await p.error("two", stream=True)
        assert (error.status, error.code) == (504, "request_deadline_exceeded")
        assert trio.current_time() == 150.0  # the first attempt's 100 s, then 50 of the next
        assert [e.outcome for e in await attempts(p)] == ["error", "cancelled"]
        books = await p.store.books((await p.store.list_keys())[-1].id)
        assert (books.reserved_micro_usd, books.spent_micro_usd) == (0, 0)


async def test_a_circuit_opens_refuses_and_probes_after_its_cooldown(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        policy = BreakerPolicy(failures_to_open=2, cooldown_s=30)
        return attrs.evolve(hedging(settings), breaker=policy)

    async with running_pipeline(tmp_path, configure) as p:
        for _ in range(2):
            assert (await p.error("fake/status:503")).code == "upstream_unavailable"
        sent = len(p.upstream.requests)
        refused = await p.error("fake/status:503")
        assert len(p.upstream.requests) == sent  # never sent: the circuit is open
        assert (refused.status, refused.code) == (503, "circuit_open")
        assert refused.headers["Retry-After"] == "30"
        await trio.sleep(29.9)
        assert (await p.error("fake/other")).code == "circuit_open"  # the whole provider
        await trio.sleep(0.1)
        reply = await p.send("fake/ok")  # the half-open probe goes, succeeds, closes it
        assert reply.status == 200 and len(p.upstream.requests) == sent + 1
        assert (await p.send("fake/ok")).status == 200


async def test_rate_limits_back_off_for_retry_after_and_never_open_the_circuit(
    tmp_path: Path, autojump_clock: object
) -> None:
    """Three 429s with Retry-After: 3 (more than failures_to_open): each time the model
    waits out exactly its 3 s, the rest of the provider serves, and no circuit opens."""

    def configure(settings: Settings) -> Settings:
        limited = fake_model(settings, "limited", "ratelimit:3")
        policy = BreakerPolicy(failures_to_open=2, cooldown_s=300)
        return attrs.evolve(with_models(settings, limited=limited), breaker=policy)

    async with running_pipeline(tmp_path, configure) as p:
        for round_ in range(1, 4):
            error = await p.error("limited")  # the provider's own 429
            assert (error.status, error.headers["Retry-After"]) == (429, "3")
            assert len(p.upstream.requests) == 2 * round_ - 1
            await trio.sleep(2.9)
            refused = await p.error("limited")  # backing off: the gateway answers
            assert (refused.status, refused.code) == (429, "upstream_rate_limited")
            assert refused.headers["Retry-After"] == "1"
            assert len(p.upstream.requests) == 2 * round_ - 1
            assert (await p.send("fake/ok")).status == 200  # the rest of the provider
            states = p.ports.breaker.snapshot(trio.current_time())
            assert (states.get("fake", "closed"), states["fake/limited"]) == (
                "closed",
                "backing_off",
            )
            await trio.sleep(0.1)


async def test_tokens_per_minute_refuse_until_the_next_window(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        key = await p.new_key(tpm_limit=5)  # one request's usage is 3 + 2 tokens
        assert (await p.send("fake/ok", key=key)).status == 200
        await trio.sleep(59)
        refused = await p.error("fake/ok", key=key)
        assert refused.status == 429 and "tokens per minute" in refused.message
        assert refused.headers["Retry-After"] == "1"
        await trio.sleep(1)
        assert (await p.send("fake/ok", key=key)).status == 200


async def test_requests_per_minute_reset_at_the_next_window(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        key = await p.new_key(rpm_limit=2)
        for remaining in ("1", "0"):
            reply = await p.send("fake/ok", key=key)
            assert reply.headers["X-RateLimit-Remaining"] == remaining
        await trio.sleep(30)
        refused = await p.error("fake/ok", key=key)
        assert refused.status == 429 and refused.headers["Retry-After"] == "30"
        await trio.sleep(30)
        assert (await p.send("fake/ok", key=key)).status == 200


async def test_a_stream_the_client_leaves_is_settled_and_its_upstream_closed(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        reply = await p.send("fake/stall:2", stream=True)
        assert reply.stream is not None
        first = await reply.stream.__anext__()
        assert first.startswith(b"data: ")
        await reply.stream.aclose()  # what the HTTP layer does when the client goes
        assert p.upstream.closed == 1
        [entry] = await attempts(p)
        assert (entry.status, entry.outcome, entry.estimated) == (499, "client_closed", True)


async def test_an_upstream_silent_mid_stream_is_cut_at_the_idle_timeout(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        return attrs.evolve(settings, timeouts=Timeouts(idle_s=45))

    async with running_pipeline(tmp_path, configure) as p:
        body = await read_all(await p.send("fake/stall:2", stream=True))
        assert trio.current_time() == 45.0
        assert b"[DONE]" not in body and b"sent nothing for 45 s" in body
        [entry] = await attempts(p)
        assert (entry.status, entry.outcome) == (502, "error")


async def test_a_key_revoked_while_its_request_uploads_is_refused_as_revoked(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with running_pipeline(tmp_path) as p:
        key = await p.new_key()
        record = await p.store.key_by_hash(hash_key(key))
        assert record is not None

        async def revoke() -> None:
            await p.store.revoke_key(record.id)

        error = await p.error("fake/ok", key=key, while_uploading=revoke)
        assert (error.status, error.code) == (401, "revoked_api_key")  # not a 429
        assert p.upstream.requests == []


async def test_a_probe_whose_client_leaves_mid_attempt_is_given_back(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        return attrs.evolve(settings, breaker=BreakerPolicy(failures_to_open=1, cooldown_s=30))

    async with running_pipeline(tmp_path, configure) as p:
        assert (await p.error("fake/status:503")).code == "upstream_unavailable"
        await trio.sleep(30)
        with trio.move_on_after(1):  # the probe is on its way: the client leaves
            await p.send("fake/slowstart:5000")
        assert p.upstream.cancelled == 1
        # the probe came back unjudged: the next request may probe at once
        assert (await p.send("fake/ok")).status == 200


async def test_attempts_the_client_leaves_before_a_first_byte_are_recorded_so(
    tmp_path: Path, autojump_clock: object
) -> None:
    def configure(settings: Settings) -> Settings:
        slow = fake_model(
            settings, "slow-hedged", "slowstart:5000", hedge_after_ms=150, fallbacks=("silent",)
        )
        return with_models(hedging(settings), **{"slow-hedged": slow})

    async with running_pipeline(tmp_path, configure) as p:
        # in turn (one attempt), then a hedged race (two): the upstreams are still
        # thinking when the client leaves
        for model, recorded in (("fake/slowstart:5000", 1), ("slow-hedged", 3)):
            with trio.move_on_after(1):
                await p.send(model)
            entries = await attempts(p)
            assert p.upstream.cancelled == len(entries) == recorded
            for entry in entries:  # not "lost_race": no attempt won
                assert (entry.outcome, entry.error_type) == ("cancelled", "client_disconnected")
            books = await p.store.books((await p.store.list_keys())[-1].id)
            assert (books.reserved_micro_usd, books.spent_micro_usd) == (0, 0)
