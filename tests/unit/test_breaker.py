"""The circuit breaker core: states over time, and every way a half-open probe can end."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from saferouter.config import BreakerPolicy
from saferouter.gateway.breaker import (
    BACKING_OFF,
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    CircuitBreaker,
    Outcome,
    Standing,
)

KEYS = ("p", "p/m")


def fail(breaker: CircuitBreaker, now: float, key: str = "p") -> None:
    admission = breaker.admit([key], now)
    assert admission is not None
    with admission:
        admission.settle(Outcome.FAILURE, now, key=key)


def half_open(**policy: float) -> CircuitBreaker:
    """A breaker whose key ``p`` opened at 0 and is half-open from 1 on."""
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=1, cooldown_s=1, **policy))
    fail(breaker, 0)
    assert breaker.state("p", 0.5) == OPEN and breaker.state("p", 1) == HALF_OPEN
    return breaker


def probe(breaker: CircuitBreaker, now: float = 2) -> Admission:
    admission = breaker.admit(KEYS, now)
    assert admission is not None
    assert breaker.admit(KEYS, now) is None  # only one probe at a time
    return admission


def test_opens_after_n_failures_then_probes_once() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=3, cooldown_s=10))
    for t in range(2):
        fail(breaker, t)
        assert breaker.admit(KEYS, t) is not None
    fail(breaker, 2)
    assert breaker.state("p", 2) == OPEN and breaker.admit(KEYS, 5) is None
    assert breaker.standing(KEYS, 5).retry_at == 12
    with probe(breaker, 12) as admission:  # probe failed: open for twice as long
        admission.settle(Outcome.FAILURE, 13, key="p")
    assert breaker.admit(KEYS, 30) is None
    with probe(breaker, 34) as admission:
        admission.settle(Outcome.SUCCESS, 34)
    assert breaker.state("p", 34) == CLOSED and breaker.snapshot(34) == {}


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=2))
    fail(breaker, 0)
    with breaker.admit(KEYS, 0) as admission:  # type: ignore[union-attr]
        admission.settle(Outcome.SUCCESS, 0)
    fail(breaker, 1)
    assert breaker.state("p", 1) == CLOSED


def test_no_balance_opens_at_once_for_long() -> None:
    breaker = CircuitBreaker(BreakerPolicy(no_balance_cooldown_s=300))
    with breaker.admit(KEYS, 0) as admission:  # type: ignore[union-attr]
        admission.settle(Outcome.NO_BALANCE, 0, key="p")
    assert breaker.standing(["p"], 10) == Standing(state=OPEN, retry_at=300)
    assert breaker.admit(KEYS, 299) is None and breaker.admit(KEYS, 300) is not None


# -- every way a probe ends: the next request may probe (or the verdict holds) ---------


def test_probe_that_succeeds_closes_the_circuit() -> None:
    breaker = half_open()
    with probe(breaker) as admission:
        admission.settle(Outcome.SUCCESS, 2)
    assert breaker.state("p", 2) == CLOSED


def test_probe_that_fails_reopens_for_twice_as_long() -> None:
    breaker = half_open()
    with probe(breaker) as admission:
        admission.settle(Outcome.FAILURE, 2, key="p")
    assert breaker.state("p", 3.9) == OPEN and breaker.state("p", 4) == HALF_OPEN


class ClientLeft(BaseException):
    """Stands for trio.Cancelled: a BaseException raised through the with block."""


@pytest.mark.parametrize(
    "raised", [ClientLeft, RuntimeError, None], ids=["cancelled", "exception", "never-started"]
)
def test_probe_that_ends_without_a_verdict_lets_the_next_one_through(
    raised: type[BaseException] | None,
) -> None:
    breaker = half_open()
    with pytest.raises(raised) if raised else nullcontext():
        with probe(breaker):
            if raised:
                raise raised()
    assert breaker.state("p", 2) == HALF_OPEN
    assert breaker.admit(KEYS, 2) is not None  # the next request probes


def test_a_verdict_about_one_key_gives_back_the_probe_of_the_other() -> None:
    breaker = half_open()
    fail(breaker, 0, key="p/m")  # the model key opened too (failures_to_open=1)
    assert breaker.state("p/m", 2) == HALF_OPEN
    with probe(breaker) as admission:
        admission.settle(Outcome.FAILURE, 2, key="p/m")  # says nothing about p
    assert breaker.state("p/m", 2) == OPEN
    # p's probe is free: a request for another model of p may probe it
    assert breaker.admit(("p", "p/other"), 2) is not None


def test_a_key_that_refuses_does_not_take_the_probe_of_another() -> None:
    breaker = half_open()
    with breaker.admit(KEYS, 2) as admission:  # type: ignore[union-attr]
        admission.settle(Outcome.NO_BALANCE, 2, key="p/m")  # p/m open for long
    assert breaker.state("p", 3) == HALF_OPEN
    assert breaker.admit(KEYS, 3) is None  # refused by p/m ...
    assert breaker.admit(("p", "p/other"), 3) is not None  # ... without taking p's probe


def test_settled_exactly_once() -> None:
    breaker = half_open()
    with probe(breaker) as admission:
        admission.settle(Outcome.SUCCESS, 2)
        admission.settle(Outcome.NO_BALANCE, 2, key="p")  # too late: ignored
    assert breaker.state("p", 2) == CLOSED


def test_an_old_admission_cannot_free_a_newer_probe() -> None:
    breaker = half_open()
    with probe(breaker) as first:
        first.settle(Outcome.FAILURE, 2, key="p")  # reopened until 4
        second = probe(breaker, 4)
    # leaving `first` (already settled) must not free `second`'s probe
    assert breaker.admit(KEYS, 4) is None
    with second:
        pass
    assert breaker.admit(KEYS, 4) is not None


def test_a_verdict_must_name_an_admitted_key() -> None:
    breaker = CircuitBreaker()
    with breaker.admit(KEYS, 0) as admission:  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="must name one of"):
            admission.settle(Outcome.FAILURE, 0, key="q")


# -- rate limits are not outages -------------------------------------------------------


def test_rate_limits_back_off_for_retry_after_and_never_open() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures_to_open=2))
    now = 0.0
    for _ in range(5):
        with breaker.admit(KEYS, now) as admission:  # type: ignore[union-attr]
            admission.settle(Outcome.RATE_LIMITED, now, key="p/m", retry_after_s=1)
        assert breaker.state("p/m", now + 0.5) == BACKING_OFF
        assert breaker.standing(KEYS, now + 0.5).retry_at == now + 1
        assert breaker.admit(KEYS, now + 0.5) is None
        assert breaker.admit(("p", "p/other"), now + 0.5) is not None  # only that model
        now += 1
        assert breaker.state("p/m", now) == CLOSED and breaker.state("p", now) == CLOSED
    assert breaker.snapshot(now) == {}


def test_a_rate_limited_probe_closes_the_circuit_and_backs_off() -> None:
    breaker = half_open()
    with probe(breaker) as admission:
        admission.settle(Outcome.RATE_LIMITED, 2, key="p", retry_after_s=3)
    assert breaker.state("p", 4) == BACKING_OFF and breaker.snapshot(4) == {"p": BACKING_OFF}
    assert breaker.state("p", 5) == CLOSED


def test_retry_after_is_believed_up_to_a_bound() -> None:
    breaker = CircuitBreaker(BreakerPolicy(max_backoff_s=60))
    with breaker.admit(KEYS, 0) as admission:  # type: ignore[union-attr]
        admission.settle(Outcome.RATE_LIMITED, 0, key="p", retry_after_s=86_400)
    assert breaker.state("p", 59) == BACKING_OFF and breaker.state("p", 60) == CLOSED
