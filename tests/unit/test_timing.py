"""The Server-Timing header: formatting (values in, bytes out), and the ASGI layer putting
it on every response start from the request's one RequestTiming."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio

from saferouter.asgi import ClientGuard, timing_of
from saferouter.timing import RequestTiming, encode_server_timing, format_ms

# W3C Server Timing §3: server-timing = #server-timing-metric; metric = metric-name
# *( OWS ";" OWS server-timing-param ); dur is a decimal number of milliseconds
METRIC = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+;dur=\d+(\.\d{1,3})?"
HEADER = re.compile(rf"{METRIC}(, {METRIC})*")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.000412, "0.412"),
        (0.3, "300"),
        (0.0015, "1.5"),
        (0.0, "0"),
        (1e-7, "0"),  # under a microsecond: no exponent notation, no "0.000"
        (-0.002, "0"),  # a clock oddity never shows as a negative duration
        (123.456789, "123456.789"),
        (12345.0, "12345000"),  # no exponent notation for large values either
    ],
)
def test_milliseconds_with_at_most_three_decimals(seconds: float, text: str) -> None:
    assert format_ms(seconds) == text


def test_metrics_are_joined_by_commas() -> None:
    header = encode_server_timing([("gateway", 0.000412), ("upstream", 0.3015)])
    assert header == b"gateway;dur=0.412, upstream;dur=301.5"
    assert HEADER.fullmatch(header.decode())


def test_a_response_without_upstream_has_only_the_gateway_metric() -> None:
    timing = RequestTiming(started_s=10.0)
    assert timing.encode_header(10.25) == b"gateway;dur=250"


def test_the_upstream_wait_is_not_the_gateways_time() -> None:
    timing = RequestTiming(started_s=10.0)
    # a failed attempt, then a fallback: the race waited 10.001 → 10.701 in all
    timing.waited_on_upstream(from_s=10.001, until_s=10.701)
    timing.served_by_upstream(sent_s=10.4, first_byte_s=10.7)
    header = timing.encode_header(10.703).decode()
    assert HEADER.fullmatch(header)
    gateway, upstream = (float(m) for m in re.findall(r"dur=([\d.]+)", header))
    assert gateway == pytest.approx(3.0, abs=0.002)
    assert upstream == pytest.approx(300.0, abs=0.002)


def test_a_wait_ending_before_it_began_counts_nothing() -> None:
    timing = RequestTiming(started_s=0.0)
    timing.waited_on_upstream(from_s=5.0, until_s=4.0)
    assert timing.upstream_wait_s == 0.0


def test_timing_is_found_only_where_the_guard_put_it() -> None:
    timing = RequestTiming(started_s=0.0)
    assert timing_of({"extensions": {"saferouter.timing": timing}}) is timing
    assert timing_of({"extensions": {"saferouter.timing": "forged"}}) is None
    assert timing_of({"extensions": None}) is None and timing_of({}) is None


async def test_the_guard_stamps_every_response_start_less_the_upstream_wait() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        timing = timing_of(scope)
        assert timing is not None
        # as the race does: the request waited 10 s on an upstream (no real wait)
        timing.waited_on_upstream(from_s=timing.started_s, until_s=timing.started_s + 10)
        timing.served_by_upstream(sent_s=0.0, first_byte_s=10.0)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError

    guard = ClientGuard(app, send_timeout_s=60, drain_limit_bytes=100, body_timeout_s=30)
    http = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "headers": [],
        "extensions": {},
    }
    await guard(http, receive, record)  # type: ignore[arg-type]
    headers = sent[0]["headers"]
    assert headers[0] == (b"a", b"b")
    [value] = [v for n, v in headers if n == b"server-timing"]
    assert HEADER.fullmatch(value.decode())
    gateway, upstream = value.decode().split(", ")
    assert float(gateway.removeprefix("gateway;dur=")) < 5_000  # the 10 s wait is not in it
    assert upstream == "upstream;dur=10000"
    assert "headers" not in sent[1]  # only the start carries it
