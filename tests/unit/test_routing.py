"""What a failed attempt means: for the request (fail over? skip the provider?) and for
the circuit breaker — where client input (a model named outside the catalog) and rate
limits must never count as a provider outage."""

from __future__ import annotations

import json

import attrs
import pytest

from saferouter.byok.keyring import OwnKey
from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.config import endpoints_from_env
from saferouter.errors import (
    ByokKeyRejected,
    UpstreamBadGateway,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from saferouter.gateway.breaker import BACKING_OFF, OPEN, Outcome, Standing
from saferouter.gateway.routing import (
    NotStarted,
    Plan,
    Verdict,
    candidates,
    classify,
    plan_attempts,
    refused,
    unavailable,
)

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
LISTED = CATALOG.resolve("glm-4.7")
UNLISTED = CATALOG.resolve("zai/glm-made-up")  # prefix-routed: the client's own name


def rejected(status: int, code: str | None = None, retry_after: str | None = None) -> UpstreamError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return UpstreamRejected("no", status=status, code=code, headers=headers)


def auth_failed() -> UpstreamError:
    return UpstreamBadGateway("refused", code="upstream_auth_failed")


def no_balance() -> UpstreamError:
    return UpstreamBadGateway("empty", code="upstream_insufficient_balance")


CASES = [
    # (error, listed?, verdict)
    (rejected(400), True, Verdict(failover=False)),
    (rejected(404), False, Verdict(failover=False)),
    (
        rejected(429, retry_after="1"),
        True,
        Verdict(
            failover=True,
            skip_provider=True,
            breaker=Outcome.RATE_LIMITED,
            breaker_key="zai/glm-4.7",
            retry_after_s=1.0,
        ),
    ),
    (rejected(429, retry_after="1"), False, Verdict(failover=True, skip_provider=True)),
    (rejected(429), True, Verdict(failover=True)),
    (rejected(429, code="1302"), True, Verdict(failover=True, skip_provider=True)),
    (
        rejected(429, code="1305"),
        True,
        Verdict(failover=True, breaker=Outcome.FAILURE, breaker_key="zai/glm-4.7"),
    ),
    (rejected(429, code="1305"), False, Verdict(failover=True)),
    (
        auth_failed(),
        True,
        Verdict(failover=True, skip_provider=True, breaker=Outcome.NO_BALANCE, breaker_key="zai"),
    ),
    (
        auth_failed(),
        False,
        Verdict(failover=True, skip_provider=True, breaker=Outcome.NO_VERDICT),
    ),
    (
        no_balance(),
        False,
        Verdict(failover=True, skip_provider=True, breaker=Outcome.NO_BALANCE, breaker_key="zai"),
    ),
    (
        UpstreamBadGateway("500"),
        False,
        Verdict(failover=True, breaker=Outcome.FAILURE, breaker_key="zai"),
    ),
    (
        UpstreamTimeout("slow"),
        True,
        Verdict(failover=True, breaker=Outcome.FAILURE, breaker_key="zai"),
    ),
    (  # a 200 whose body says the response failed: the request may be why, not the provider
        UpstreamBadGateway("failed", code="upstream_failed_response"),
        True,
        Verdict(failover=True, breaker=Outcome.NO_VERDICT),
    ),
]


@pytest.mark.parametrize(
    ("error", "listed", "verdict"),
    CASES,
    ids=[
        f"{e.status}-{e.code}-retry:{e.headers.get('Retry-After')}-{'' if listed else 'un'}listed"
        for e, listed, _ in CASES
    ],
)
def test_classify(error: UpstreamError, listed: bool, verdict: Verdict) -> None:
    assert classify(error, LISTED if listed else UNLISTED) == verdict


def test_the_two_models_are_what_the_cases_say() -> None:
    assert LISTED.listed and not UNLISTED.listed
    assert LISTED.provider == UNLISTED.provider == "zai"


def test_a_backed_off_candidate_is_a_429_with_its_retry_after() -> None:
    backing_off = refused(Standing(state=BACKING_OFF, retry_at=12.5), "Z.AI", "glm-4.7")
    error = unavailable([backing_off, NotStarted("circuit_open", "also cooling down")], now=10)
    assert (error.status, error.code, error.headers) == (
        429,
        "upstream_rate_limited",
        {"Retry-After": "3"},
    )
    assert json.loads(error.body())["error"]["type"] == "rate_limit_error"
    assert "Z.AI asked to wait" in error.message and "also cooling down" in error.message


def test_an_open_circuit_is_a_503_saying_when_to_try_again() -> None:
    error = unavailable([refused(Standing(state=OPEN, retry_at=40), "Z.AI", "glm-4.7")], now=10)
    assert (error.status, error.code, error.headers) == (503, "circuit_open", {"Retry-After": "30"})
    error = unavailable([NotStarted("provider_not_configured", "no key")], now=10)
    assert (error.status, error.code, error.headers) == (503, "provider_not_configured", {})


ENDPOINTS = endpoints_from_env(CATALOG, {"DEEPSEEK_API_KEY": "sk-operator-ds"})


def own(provider: str, *, fallback: bool) -> OwnKey:
    endpoint = attrs.evolve(ENDPOINTS[provider], api_key=f"sk-own-{provider}")
    return OwnKey(provider=provider, fingerprint="f" * 12, fallback=fallback, endpoint=endpoint)


def test_without_own_keys_every_attempt_is_the_operators() -> None:
    chain = candidates(CATALOG, CATALOG.resolve("deepseek-flash"), None)
    plans = plan_attempts(chain, ENDPOINTS, {})
    assert plans == [Plan(m, ENDPOINTS[m.provider]) for m in chain]


@pytest.mark.parametrize("fallback", [False, True])
def test_an_own_key_goes_first_and_the_operators_only_with_fallback(fallback: bool) -> None:
    chain = candidates(CATALOG, CATALOG.resolve("deepseek-flash"), None)
    key = own("deepseek", fallback=fallback)
    plans = plan_attempts(chain, ENDPOINTS, {"deepseek": key})
    whose = [(p.model.id, p.own_key is not None, p.endpoint.api_key) for p in plans]
    then = [("deepseek-flash", False, "sk-operator-ds")] if fallback else []
    again = [("deepseek-v4-pro", False, "sk-operator-ds")] if fallback else []
    assert whose == [
        ("deepseek-flash", True, "sk-own-deepseek"),
        *then,
        ("deepseek-v4-pro", True, "sk-own-deepseek"),
        *again,
        ("glm-4.7", False, None),  # Z.AI: no own key, the operator's (unset here)
        ("glm-5.3", False, None),
    ]
    assert plans[0].account == ("deepseek", True) and plans[-1].account == ("zai", False)
    # the operator's plan for a model the own key serves only stands in after a refusal
    assert [p.stand_in for p in plans] == [
        p.own_key is None and p.model.provider == "deepseek" for p in plans
    ]


@pytest.mark.parametrize("fallback", [False, True])
def test_a_refused_own_key_fails_over_only_with_fallback(fallback: bool) -> None:
    verdict = classify(ByokKeyRejected("refused"), LISTED, byok_fallback=fallback)
    assert verdict == Verdict(failover=fallback, skip_provider=True)
    # what the breaker would hear goes unheard: an own-key attempt holds no admission
    assert classify(ByokKeyRejected("refused"), LISTED).failover is False
