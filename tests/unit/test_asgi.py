"""The ASGI layer: the body-progress core (messages in, verdicts out), and ClientGuard
between a scripted server and a small ASGI app, on trio's autojump clock (no real waits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from saferouter.asgi import BodyProgress, ClientDelivery, ClientGuard, delivery_of
from saferouter.config import load_settings
from saferouter.errors import ConfigError

LIMIT = 100


def progress(*headers: tuple[bytes, bytes]) -> BodyProgress:
    return BodyProgress.from_headers(list(headers), drain_limit_bytes=LIMIT)


def chunk(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.mark.parametrize(
    "headers",
    [(), ((b"content-length", b"0"),), ((b"host", b"x"), (b"content-length", b" 0 "))],
    ids=["no-body-headers", "length-0", "length-0-spaces"],
)
def test_a_request_without_a_body_is_complete_from_the_start(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    body = progress(*headers)
    assert body.complete and body.settled


def test_a_sized_body_is_complete_at_its_last_message_not_its_last_byte() -> None:
    # hypercorn sends the bytes, then an empty end message once h11 has seen the end:
    # only then may the connection be reused
    body = progress((b"content-length", b"10"))
    assert not body.settled
    body.observe(chunk(b"0123456789"))
    assert body.received_bytes == 10 and not body.complete and not body.settled
    body.observe(chunk(b"", more=False))
    assert body.complete and body.settled


def test_a_sized_body_over_the_drain_limit_is_not_waited_for() -> None:
    body = progress((b"content-length", b"%d" % (LIMIT + 1)))
    assert not body.complete and not body.worth_draining and body.settled


def test_a_chunked_body_is_waited_for_until_it_passes_the_limit() -> None:
    body = progress((b"transfer-encoding", b"chunked"), (b"content-length", b"5"))
    assert body.expected_bytes is None and not body.settled
    body.observe(chunk(b"x" * LIMIT))
    assert body.worth_draining and not body.settled
    body.observe(chunk(b"x"))
    assert not body.worth_draining and body.settled and not body.complete


def test_a_client_that_leaves_settles_the_wait() -> None:
    body = progress((b"content-length", b"10"))
    body.observe({"type": "http.disconnect"})
    assert body.disconnected and body.settled and not body.complete


def test_delivery_is_found_only_where_the_guard_put_it() -> None:
    delivery = ClientDelivery()
    assert delivery_of({"extensions": {"saferouter.delivery": delivery}}) is delivery
    assert delivery_of({"extensions": {"saferouter.delivery": "forged"}}) is None
    assert delivery_of({"extensions": None}) is None and delivery_of({}) is None


class ScriptedServer:
    """The server side of one request: body messages fed on demand, sends recorded;
    ``blocked`` makes every body send wait until the server is told the app finished
    (``send(None)``), as hypercorn's shielded send_all waits on a client that never reads."""

    def __init__(self, *, blocked: bool = False) -> None:
        self.incoming_send, self.incoming = trio.open_memory_channel[dict[str, Any]](10)
        self.sent: list[dict[str, Any] | None] = []
        self.blocked = blocked
        self.finished = trio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.receive()

    async def send(self, message: dict[str, Any] | None) -> None:
        self.sent.append(message)
        if message is None:
            self.finished.set()
        elif self.blocked and message["type"] == "http.response.body":
            await self.finished.wait()


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "headers": list(headers),
        "extensions": {},
    }


async def early_401(scope: Any, receive: Any, send: Any) -> None:
    """Answers at once, reading nothing (while, as quart-trio does, pulling messages)."""
    async with trio.open_nursery() as nursery:

        async def pull() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        nursery.start_soon(pull)
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})
        nursery.cancel_scope.cancel()


def guard(app: Any) -> ClientGuard:
    return ClientGuard(app, send_timeout_s=60, drain_limit_bytes=LIMIT, body_timeout_s=30)


async def test_an_early_answer_waits_for_the_body_then_keeps_the_connection(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = ScriptedServer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            guard(early_401),  # type: ignore[arg-type]
            scope((b"content-length", b"4")),
            server.receive,
            server.send,
        )
        await trio.sleep(5)
        assert server.sent == []  # the answer waits for the body
        await server.incoming_send.send(chunk(b"body"))
        await server.incoming_send.send(chunk(b"", more=False))
    start = server.sent[0]
    assert start is not None and start["status"] == 401
    assert (b"connection", b"close") not in start["headers"]


@pytest.mark.parametrize("length", [LIMIT * 2, None], ids=["too-big", "too-slow"])
async def test_a_body_too_big_or_slow_to_drain_gets_connection_close(
    autojump_clock: trio.abc.Clock, length: int | None
) -> None:
    server = ScriptedServer()
    headers = (b"content-length", b"%d" % (length or 4))
    await guard(early_401)(scope(headers), server.receive, server.send)  # type: ignore[arg-type]
    start = server.sent[0]
    assert start is not None and (b"connection", b"close") in start["headers"]
    assert trio.current_time() >= (0 if length else 30)


async def test_a_send_the_client_never_takes_is_cut_at_the_send_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = ScriptedServer(blocked=True)
    seen: list[ClientDelivery | None] = []

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        seen.append(delivery_of(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})

    app = ClientGuard(stream, send_timeout_s=7, drain_limit_bytes=LIMIT, body_timeout_s=30)
    async with trio.open_nursery() as worker:  # the worker's watch, as its lifespan runs it
        worker.start_soon(app.watch.run)
        await trio.sleep(3)  # a watch that has been idle a while
        started = trio.current_time()
        await app(scope(), server.receive, server.send)  # type: ignore[arg-type]
        worker.cancel_scope.cancel()
    assert trio.current_time() - started == pytest.approx(7)
    assert seen[0] is not None and seen[0].stalled
    assert server.sent[-1] is None  # hypercorn was told to end the exchange


def test_the_send_timeout_setting(tmp_path: Path) -> None:
    assert load_settings({}, data_dir=tmp_path).send_timeout_s == 60
    custom = load_settings({"SAFEROUTER_SEND_TIMEOUT_S": "2.5"}, data_dir=tmp_path)
    assert custom.send_timeout_s == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match="SAFEROUTER_SEND_TIMEOUT_S"):
            load_settings({"SAFEROUTER_SEND_TIMEOUT_S": bad}, data_dir=tmp_path)


async def test_one_watch_cuts_each_stalled_send_at_its_own_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Many requests, one watch task: each blocked send is cut 7 s after it began, and
    a send that completes in time is left alone."""
    cut_at: dict[str, float] = {}

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})

    app = ClientGuard(stream, send_timeout_s=7, drain_limit_bytes=LIMIT, body_timeout_s=30)

    async def request(name: str, delay_s: float, server: ScriptedServer) -> None:
        await trio.sleep(delay_s)
        await app(scope(), server.receive, server.send)  # type: ignore[arg-type]
        cut_at[name] = trio.current_time()

    async with trio.open_nursery() as worker:
        worker.start_soon(app.watch.run)
        async with trio.open_nursery() as requests:
            requests.start_soon(request, "a", 0, ScriptedServer(blocked=True))
            requests.start_soon(request, "b", 2.5, ScriptedServer(blocked=True))
            requests.start_soon(request, "reads", 1, ScriptedServer())
        worker.cancel_scope.cancel()
    assert cut_at == {"a": pytest.approx(7), "b": pytest.approx(9.5), "reads": 1}
