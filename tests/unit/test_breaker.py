from __future__ import annotations

from saferouter.gateway.breaker import CLOSED, HALF_OPEN, OPEN, BreakerPolicy, CircuitBreaker


def test_opens_after_n_failures_then_probes_once() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=3, cooldown_s=10))
    for t in range(2):
        breaker.failed("p", t)
        assert breaker.allow("p", t)
    breaker.failed("p", 2)
    assert breaker.state("p", 2) == OPEN and not breaker.allow("p", 5)
    assert breaker.state("p", 12) == HALF_OPEN
    assert breaker.allow("p", 12)  # the probe
    assert not breaker.allow("p", 12)  # only one
    breaker.failed("p", 13)  # probe failed: open for twice as long
    assert not breaker.allow("p", 30) and breaker.allow("p", 34)
    breaker.succeeded("p")
    assert breaker.state("p", 34) == CLOSED and breaker.allow("p", 34)


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=2))
    breaker.failed("p", 0)
    breaker.succeeded("p")
    breaker.failed("p", 1)
    assert breaker.state("p", 1) == CLOSED


def test_no_balance_opens_at_once_for_long() -> None:
    breaker = CircuitBreaker(BreakerPolicy(no_balance_cooldown_s=300))
    breaker.failed("zai", 0, no_balance=True)
    assert not breaker.allow("zai", 299) and breaker.allow("zai", 300)
    assert breaker.retry_at("zai") == 300


def test_a_cancelled_probe_lets_another_through() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=1, cooldown_s=1))
    breaker.failed("p", 0)
    assert breaker.allow("p", 2)
    breaker.released("p")
    assert breaker.allow("p", 2)
