"""The connection cap's pure parts: who is closed to make room, what file limit the cap
needs, the rapid-reset budget, and the settings that turn them."""

from __future__ import annotations

import pytest

from saferouter.config import load_settings
from saferouter.connections import FILE_MARGIN, ConnectionTable, plan_file_limit
from saferouter.errors import ConfigError
from saferouter.http_worker import ResetBudget


def test_the_longest_idle_connection_makes_room() -> None:
    table: ConnectionTable[str] = ConnectionTable(max_connections=3)
    for conn in ("a", "b", "c"):
        assert table.has_room()
        table.add(conn)
    assert not table.has_room()
    assert table.victim() == "a"
    table.touch("a")  # bytes arrived on a: b is now the quietest
    assert table.victim() == "b"
    table.mark("b", idle=True)  # b just finished a request
    assert table.victim() == "c"


def test_a_connection_with_a_request_in_flight_is_never_the_victim() -> None:
    table: ConnectionTable[str] = ConnectionTable(max_connections=2)
    table.add("a")
    table.add("b")
    table.mark("a", idle=False)
    assert table.victim() == "b"
    table.mark("b", idle=False)
    assert table.victim() is None  # all busy: wait, close nothing
    table.mark("a", idle=True)
    assert table.victim() == "a"
    assert table.idle() == ["a"]


def test_removing_frees_room_and_is_idempotent() -> None:
    table: ConnectionTable[str] = ConnectionTable(max_connections=1)
    table.add("a")
    table.remove("a")
    table.remove("a")
    table.touch("a")  # a closed connection's late bytes change nothing
    table.mark("a", idle=False)
    assert len(table) == 0 and table.has_room() and table.victim() is None


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionTable(max_connections=0)


def test_the_soft_file_limit_is_raised_to_what_the_cap_needs() -> None:
    plan = plan_file_limit(
        max_connections=200, upstream_per_request=3, max_upstream=1000, soft=256, hard=20_000
    )
    assert plan.soft_limit == 200 + 600 + FILE_MARGIN
    assert plan.max_connections == 200 and not plan.lowered
    # the upstream pool bounds the upstream sockets, whatever the cap
    plan = plan_file_limit(
        max_connections=1000, upstream_per_request=3, max_upstream=1000, soft=1024, hard=-1
    )
    assert plan.soft_limit == 1000 + 1000 + FILE_MARGIN


def test_the_soft_file_limit_is_never_lowered() -> None:
    plan = plan_file_limit(
        max_connections=10, upstream_per_request=3, max_upstream=1000, soft=50_000, hard=60_000
    )
    assert plan.soft_limit == 50_000
    unlimited = plan_file_limit(
        max_connections=10, upstream_per_request=3, max_upstream=1000, soft=-1, hard=-1
    )
    assert unlimited.soft_limit == -1


def test_a_hard_file_limit_too_low_lowers_the_cap() -> None:
    plan = plan_file_limit(
        max_connections=1000, upstream_per_request=3, max_upstream=1000, soft=256, hard=640
    )
    assert plan.lowered and plan.max_connections == (640 - FILE_MARGIN) // 4
    assert plan.soft_limit <= 640
    # where the pool bounds the upstream sockets, more clients fit
    plan = plan_file_limit(
        max_connections=5000, upstream_per_request=3, max_upstream=100, soft=256, hard=3000
    )
    assert plan.max_connections == 3000 - FILE_MARGIN - 100 and plan.soft_limit == 3000
    with pytest.raises(ConfigError, match="too low"):
        plan_file_limit(
            max_connections=10, upstream_per_request=3, max_upstream=10, soft=64, hard=100
        )


def test_the_reset_budget_allows_a_burst_then_a_rate() -> None:
    budget = ResetBudget(per_s=10)
    assert budget.spend(10, now_s=0.0)  # a burst of as many as the rate
    assert not budget.spend(1, now_s=0.0)
    budget = ResetBudget(per_s=10)
    assert budget.spend(10, now_s=0.0)
    assert budget.spend(5, now_s=0.5)  # half a second refills half the bucket
    assert budget.spend(10, now_s=5.0)  # refills only up to the burst
    assert not budget.spend(1, now_s=5.0)


def test_settings_for_connections_and_http2() -> None:
    defaults = load_settings({})
    assert defaults.max_connections == 1000 and defaults.http2 is False
    env = load_settings({"SAFEROUTER_MAX_CONNECTIONS": "300", "SAFEROUTER_HTTP2": "on"})
    assert env.max_connections == 300 and env.http2 is True
    flags = load_settings({"SAFEROUTER_HTTP2": "on"}, max_connections=5, http2=False)
    assert flags.max_connections == 5 and flags.http2 is False
    for bad in ({"SAFEROUTER_MAX_CONNECTIONS": "0"}, {"SAFEROUTER_MAX_CONNECTIONS": "many"}):
        with pytest.raises(ConfigError, match="SAFEROUTER_MAX_CONNECTIONS"):
            load_settings(bad)
    with pytest.raises(ConfigError, match="SAFEROUTER_HTTP2 must be on or off"):
        load_settings({"SAFEROUTER_HTTP2": "maybe"})
