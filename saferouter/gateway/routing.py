"""Which models to try, in what order, and what a failed attempt means (pure).

The chain is the requested model then its catalog fallbacks (capability-matched when
the catalog loads), or the client's own order (OpenRouter's ``models: [...]``). Each
candidate becomes one or two plans (:class:`Plan`): whose key an attempt carries is part
of what is planned (:func:`plan_attempts`), not a flag the race passes along. A failed
attempt either ends the request (the client's own error: 400, 404, 413, 422…) or fails
over to the next candidate; some failures also rule out the rest of that provider for
this request (no balance there, a bad provider key, a 429 with ``Retry-After``).

What the circuit breaker hears is kept apart from what the request does. A rate limit
is not an outage: the provider answered, and a catalog model only backs off for the
``Retry-After`` given. A model the client named outside the catalog (``provider/x``)
is client input: its answers may end or fail over that request, but never make the
provider unavailable to every other tenant — a 401/403 or a 429 for it says something
about that name, not about the provider.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from ..catalog import Api, Catalog, Model
from ..client_input import validate_model_id
from ..config import UpstreamEndpoint
from ..errors import (
    ByokKeyRejected,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .breaker import BACKING_OFF, Outcome, Standing

if TYPE_CHECKING:
    from ..byok.keyring import OwnKey

MAX_CLIENT_MODELS = 10
# Z.AI business codes (docs.z.ai api-code; ../shared/reference/providers.md)
ZAI_NO_BALANCE, ZAI_CONCURRENCY, ZAI_MODEL_OVERLOADED = "1113", "1302", "1305"


@attrs.frozen
class Verdict:
    failover: bool  # False: the client's own error, returned as is
    skip_provider: bool = False  # no more attempts on this provider in this request
    breaker: Outcome = Outcome.SUCCESS  # what the circuit breaker hears
    breaker_key: str = ""  # provider id, or "provider/model" for a catalog model
    retry_after_s: float = 0.0  # how long breaker_key backs off (Outcome.RATE_LIMITED)


@attrs.frozen
class NotStarted:
    """Why a candidate was not even tried, and when it may be (monotonic time)."""

    code: str
    why: str
    retry_at: float | None = None


def candidates(
    catalog: Catalog, requested: Model, client_models: Sequence[str] | None
) -> list[Model]:
    """The models to try, in order, without repeats."""
    chain = [requested]
    if client_models is not None:
        chain += [catalog.resolve(name) for name in client_models]
    else:
        chain += [catalog.models[name] for name in requested.fallbacks]
    seen: set[str] = set()
    ordered = []
    for model in chain:
        if model.id not in seen:
            seen.add(model.id)
            ordered.append(model)
    return ordered


API_NAMES = {
    Api.CHAT: "the Chat Completions API (/v1/chat/completions)",
    Api.RESPONSES: "the Responses API (/v1/responses)",
    Api.MESSAGES: "the Messages API (/v1/messages)",
}


def serving_api(catalog: Catalog, chain: Sequence[Model], api: Api) -> list[Model]:
    """The candidates whose provider serves ``api``, in order: a fallback whose
    provider does not is dropped; the requested model's (the first) not serving it is
    the client's error, 400 ``unsupported_api`` naming the models that do."""
    providers = catalog.providers
    requested = chain[0]
    if api not in providers[requested.provider].apis:
        serving = [m.id for m in catalog.models.values() if api in providers[m.provider].apis]
        raise InvalidRequest(
            f"The model `{requested.id}` is not served through {API_NAMES[api]}. "
            + (
                f"Models that are: {', '.join(serving)}."
                if serving
                else "No model of this gateway is."
            ),
            param="model",
            code="unsupported_api",
        )
    return [model for model in chain if api in providers[model.provider].apis]


@attrs.frozen
class Plan:
    """One attempt the race may make: a model, the endpoint it goes to, and whose
    provider key it carries (the endpoint's)."""

    model: Model
    endpoint: UpstreamEndpoint
    own_key: OwnKey | None = None  # the client's own provider key; None: the operator's
    # the operator's key standing in for the client's (``byok_fallback``): started only
    # once the provider refused the client's key in this request — not after any other
    # failure of it, and never by a hedge while it is merely slow
    stand_in: bool = False

    @property
    def account(self) -> tuple[str, bool]:
        """Whose account at which provider pays: what a failure may rule out for the
        rest of the request (the client's account failing says nothing of the
        operator's, and the other way round)."""
        return self.model.provider, self.own_key is not None


def plan_attempts(
    chain: Sequence[Model],
    endpoints: Mapping[str, UpstreamEndpoint],
    own_keys: Mapping[str, OwnKey],
) -> list[Plan]:
    """The attempts to make, in order. A candidate whose provider the client holds a key
    for goes there with that key, then — only if the key allows ``byok_fallback`` —
    with the operator's as a stand-in (started only after a refusal; priced all the
    same, so the reservation covers it); every other candidate with the operator's."""
    if not own_keys:
        return [Plan(model, endpoints[model.provider]) for model in chain]
    plans = []
    for model in chain:
        own = own_keys.get(model.provider)
        if own is not None:
            plans.append(Plan(model, own.endpoint, own))
            if not own.fallback:
                continue
        plans.append(Plan(model, endpoints[model.provider], stand_in=own is not None))
    return plans


def parse_client_models(value: object) -> list[str] | None:
    """OpenRouter's ``models`` field: a list of model ids to fall back through."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_CLIENT_MODELS:
        raise InvalidRequest(
            f"'models' must be a list of 1 to {MAX_CLIENT_MODELS} model ids.",
            param="models",
            code="invalid_value",
        )
    return [validate_model_id(v, param=f"models[{i}]") for i, v in enumerate(value)]


def classify(error: UpstreamError, model: Model, *, byok_fallback: bool = False) -> Verdict:
    """What one failed attempt means for the rest of the request, and for the breaker
    (an attempt with the client's own key has no breaker admission: its verdict's
    breaker part goes unheard; ``byok_fallback`` is that key's setting)."""
    provider, model_key = model.provider, f"{model.provider}/{model.id}"
    if isinstance(error, ByokKeyRejected):
        # the client's key is refused: the operator's may stand in only if the client
        # allowed it (the plan lists it next); otherwise the request ends here
        return Verdict(failover=byok_fallback, skip_provider=True)
    if isinstance(error, UpstreamRejected):
        if error.status != 429:
            return Verdict(failover=False)  # the request itself is at fault
        if error.code == ZAI_MODEL_OVERLOADED:
            if not model.listed:  # a made-up name keeps no state: it is only that request's
                return Verdict(failover=True)
            return Verdict(failover=True, breaker=Outcome.FAILURE, breaker_key=model_key)
        retry_after_s = _seconds(error.headers.get("Retry-After")) or 0.0
        busy_account = error.code == ZAI_CONCURRENCY or retry_after_s > 0
        # a rate limit is not an outage: a catalog model waits out its Retry-After, no
        # longer; a made-up name's 429 only moves that request on
        if retry_after_s > 0 and model.listed:
            return Verdict(
                failover=True,
                skip_provider=True,
                breaker=Outcome.RATE_LIMITED,
                breaker_key=model_key,
                retry_after_s=retry_after_s,
            )
        return Verdict(failover=True, skip_provider=busy_account)
    if error.code == "upstream_auth_failed" and not model.listed:
        # the provider may refuse our key for this one name (a model we have no access
        # to): a 502 for this request, while the catalog's models keep being served
        return Verdict(failover=True, skip_provider=True, breaker=Outcome.NO_VERDICT)
    if error.code == "upstream_failed_response":
        # the provider answered 200 and said the response failed: it is up, and the
        # request itself may be what failed, so no tenant's circuit hears of it
        return Verdict(failover=True, breaker=Outcome.NO_VERDICT)
    if error.code in ("upstream_insufficient_balance", "upstream_auth_failed"):
        # no money, or a key the provider refuses: retrying cannot help soon
        return Verdict(
            failover=True, skip_provider=True, breaker=Outcome.NO_BALANCE, breaker_key=provider
        )
    return Verdict(failover=True, breaker=Outcome.FAILURE, breaker_key=provider)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0  # an HTTP date: some time from now


def refused(standing: Standing, provider_name: str, model_id: str) -> NotStarted:
    """Why the circuit breaker refused a candidate whose keys stand as ``standing``."""
    if standing.state == BACKING_OFF:
        why = f"{provider_name} asked to wait before the next request for {model_id}"
        return NotStarted("upstream_rate_limited", why, standing.retry_at)
    why = f"{provider_name} is cooling down after failures"
    return NotStarted("circuit_open", why, standing.retry_at)


def unavailable(not_started: Sequence[NotStarted], now: float) -> UpstreamError:
    """No candidate could even be tried: say why, for each, and when to try again (the
    first reason decides the status: a 429 when a provider asked to wait)."""
    reasons = list(dict.fromkeys(n.why for n in not_started))
    code = not_started[0].code if not_started else "upstream_unavailable"
    message = "No provider can serve this request now: " + ("; ".join(reasons) or "none left") + "."
    times = [n.retry_at for n in not_started if n.retry_at is not None]
    headers = {"Retry-After": str(max(1, math.ceil(min(times) - now)))} if times else {}
    if code == "upstream_rate_limited":
        return UpstreamRateLimited(message, code=code, headers=headers)
    return UpstreamUnavailable(message, code=code, headers=headers)


@attrs.frozen
class Candidates:
    """The models a request may be served by, in order, the one it asked for, and what
    the client should know of how they were chosen (the activity entry's note)."""

    requested: Model
    # ``requested`` as the client named it (``zai/glm-4.7`` for the catalog's glm-4.7):
    # what the activity entry and the receipt say was asked for — never a skipped id
    requested_name: str
    chain: tuple[Model, ...]
    notes: tuple[str, ...] = ()


def choose_candidates(
    catalog: Catalog, model: str | None, client_models: Sequence[str] | None
) -> Candidates:
    """The candidates of a request naming ``model`` and/or OpenRouter's ``models``.

    Without ``models``: ``model`` and its catalog fallbacks (an unknown ``model`` is a
    404, as it always was). With ``models``: OpenRouter's list — ``model`` first when
    given, then ``models`` in order — where an id the catalog does not know (not listed,
    not claimed by a provider's prefix, or of a provider with no default price) is
    skipped and said in a note, and the first known id is the requested model; a 404
    only when no id is known."""
    if client_models is None:
        assert model is not None, "a request without model has models"
        requested = catalog.resolve(model)
        return Candidates(requested, model, tuple(candidates(catalog, requested, None)))
    names = ([model] if model is not None else []) + list(client_models)
    known: list[Model] = []
    known_names: list[str] = []
    skipped: list[str] = []
    for name in names:
        try:
            known.append(catalog.resolve(name))
            known_names.append(name)
        except ModelNotFound:
            skipped.append(f"{name} ({_unknown_because(catalog, name)})")
    if not known:
        raise ModelNotFound(
            "None of the models asked for is known here: " + "; ".join(skipped) + ".",
            param="models",
        )
    chain = candidates(catalog, known[0], [m.id for m in known[1:]])
    notes = ("skipped models: " + ", ".join(skipped),) if skipped else ()
    return Candidates(known[0], known_names[0], tuple(chain), notes)


def _unknown_because(catalog: Catalog, name: str) -> str:
    provider, slash, _ = name.partition("/")
    if slash and provider in catalog.providers:
        return f"provider {provider} has no default price to bill it by"
    return "not in the catalog"
