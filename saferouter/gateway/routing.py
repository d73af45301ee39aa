"""Which models to try, in what order, and what a failed attempt means (pure).

The chain is the requested model then its catalog fallbacks (capability-matched when
the catalog loads), or the client's own order (OpenRouter's ``models: [...]``). A failed
attempt either ends the request (the client's own error: 400, 404, 413, 422…) or fails
over to the next candidate; some failures also rule out the rest of that provider for
this request (no balance there, a bad provider key, a 429 with ``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..catalog import Catalog, Model
from ..client_input import validate_model_id
from ..errors import InvalidRequest, UpstreamError, UpstreamRejected

MAX_CLIENT_MODELS = 10
# Z.AI business codes (docs.z.ai api-code; ../shared/reference/providers.md)
ZAI_NO_BALANCE, ZAI_CONCURRENCY, ZAI_MODEL_OVERLOADED = "1113", "1302", "1305"


@attrs.frozen
class Verdict:
    failover: bool  # False: the client's own error, returned as is
    skip_provider: bool = False  # no more attempts on this provider in this request
    breaker: str | None = None  # "failure" | "no_balance": what the circuit breaker hears
    breaker_key: str = ""  # provider id, or "provider/model" for an overloaded model


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


def classify(error: UpstreamError, model: Model) -> Verdict:
    """What one failed attempt means for the rest of the request."""
    provider = model.provider
    if isinstance(error, UpstreamRejected):
        if error.status != 429:
            return Verdict(failover=False)  # the request itself is at fault
        if error.code == ZAI_MODEL_OVERLOADED:
            return Verdict(failover=True, breaker="failure", breaker_key=f"{provider}/{model.id}")
        retry_after = _seconds(error.headers.get("Retry-After"))
        busy_account = error.code == ZAI_CONCURRENCY or (retry_after or 0) > 0
        return Verdict(
            failover=True, skip_provider=busy_account, breaker="failure", breaker_key=provider
        )
    if error.code in ("upstream_insufficient_balance", "upstream_auth_failed"):
        # no money, or a key the provider refuses: retrying cannot help soon
        return Verdict(
            failover=True, skip_provider=True, breaker="no_balance", breaker_key=provider
        )
    return Verdict(failover=True, breaker="failure", breaker_key=provider)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0  # an HTTP date: some time from now
