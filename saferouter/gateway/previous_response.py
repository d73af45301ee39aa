"""``previous_response_id``: a follow-up goes where the earlier response lives (route stage).

A Responses API provider keeps the responses it served (``store``), and a follow-up that
names one by ``previous_response_id`` is answered with that response's context — by that
provider, in that account, and nowhere else. So the follow-up is **pinned**: its attempts
are cut to the provider that served the earlier response, with the same account (the
gateway's key, or the client's own when it was served with that), and never fall back to
another provider, which would answer without the context, as if it had it.

The earlier turns come back as prompt tokens of the follow-up, which its body's bytes do
not bound: the pin adds them to the request (:attr:`ApiRequest.context_tokens`, what
the reservation counts beside the body) — the earlier response's prompt and output
tokens, an upper bound of what the provider replays (its prompt held every turn before
it). An earlier response whose usage was only estimated gives no such bound: its
follow-up counts as input the body does not bound (``non_text``: refused on a metered
key, like an image).

Whose response it is comes from the gateway's own records
(:meth:`~saferouter.storage.Store.served_response`: the serving attempt that produced
that id, for the calling key). Every key's requests go to the provider under the same
operator account, so the provider cannot tell tenants apart: an id another key's request
produced — or one the gateway never served — is 404 ``previous_response_not_found`` for
this key, and is neither pinned nor forwarded (forwarding it would hand over the other
tenant's conversation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from ..config import UpstreamEndpoint
from ..errors import InvalidRequest, NotFound, UpstreamError
from ..storage import ActivityEntry, Store
from .dialect import ApiRequest, NonText
from .routing import Plan


@attrs.frozen
class Pin:
    """Where an earlier response lives: its provider, and whose account served it."""

    response_id: str
    provider: str  # the catalog's provider id
    provider_name: str
    byok: bool  # served with the client's own provider key
    context_tokens: int  # its prompt and output tokens: what the follow-up replays
    estimated: bool  # its usage was estimated: context_tokens bounds nothing

    def applied(self, request: ApiRequest) -> ApiRequest:
        """``request`` with the earlier turns counted (see the module docstring)."""
        if self.estimated:
            unbounded = NonText(
                "previous_response_id",
                f"previous_response_id '{self.response_id}' (its usage is unknown)",
            )
            return attrs.evolve(request, non_text=(*request.non_text, unbounded))
        return attrs.evolve(request, context_tokens=self.context_tokens)

    def plans(self, plans: Sequence[Plan]) -> list[Plan]:
        """The attempts that can see the earlier response: at its provider, in its
        account. The gateway's key may appear only as a stand-in for the client's own
        (``byok_fallback``); for a response the gateway's key served, it is the one
        account that can answer, so it goes at once. Raises 400 when none is left."""
        kept = [
            attrs.evolve(plan, stand_in=False)
            for plan in plans
            if plan.model.provider == self.provider and (plan.own_key is not None) == self.byok
        ]
        if not kept:
            raise InvalidRequest(
                f"{self._lives_there()} None of this request's models is served there "
                f"(asked: {', '.join(dict.fromkeys(p.model.id for p in plans))}): ask for a "
                f"model {self.provider_name} serves, or leave out 'previous_response_id'.",
                param="previous_response_id",
                code="previous_response_elsewhere",
            )
        return kept

    def explain(self, error: UpstreamError) -> UpstreamError:
        """``error`` (no pinned attempt served) saying why no other provider was tried."""
        error.message = f"{error.message} {self._lives_there()} The request was not sent elsewhere."
        return error

    def _lives_there(self) -> str:
        account = "your own provider key" if self.byok else "the gateway's provider key"
        return (
            f"Response '{self.response_id}' (previous_response_id) was served by "
            f"{self.provider_name} with {account}, and its context lives there: no other "
            "provider has it."
        )


def pin_of(served: ActivityEntry | None, response_id: str, provider_name: str) -> Pin:
    """The pin of a follow-up to ``response_id``, from the serving attempt the store
    found for the calling key (None: none of this key's). Raises 404 when there is none."""
    if served is None or served.provider is None:
        raise NotFound(
            f"Previous response with id '{response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return Pin(
        response_id=response_id,
        provider=served.provider,
        provider_name=provider_name,
        byok=served.byok,
        context_tokens=served.prompt_tokens + served.completion_tokens,
        estimated=served.estimated,
    )


async def find_pin(
    store: Store, key_id: str, response_id: str, endpoints: Mapping[str, UpstreamEndpoint]
) -> Pin:
    """The pin of a follow-up to ``response_id`` by ``key_id`` (one store read); 404 when
    this key's requests served no such response."""
    served = await store.served_response(key_id, response_id)
    provider = served.provider if served is not None else None
    endpoint = endpoints.get(provider or "")
    name = endpoint.provider.name if endpoint is not None else str(provider)
    return pin_of(served, response_id, name)
