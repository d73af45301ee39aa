"""The route stage of the pipeline: which attempts a request may make, in order.

One function, :func:`route`, in the order each step needs the one before it:

1. **candidates** — the requested model and its catalog fallbacks, or OpenRouter's
   ``models`` with unknown ids skipped and said in a note
   (:func:`~saferouter.gateway.routing.choose_candidates`);
2. **API** — only candidates whose provider serves the request's API are kept
   (:func:`~saferouter.gateway.routing.serving_api`: 400 ``unsupported_api`` when the
   requested model's does not). Before the preferences, so that the first candidate it
   judges is still the model asked for;
3. **preferences** — OpenRouter's ``provider`` object orders and filters them
   (:func:`~saferouter.gateway.preferences.apply`, with this worker's measured
   :class:`~saferouter.gateway.route_stats.RouteStats`);
4. **plans** — whose provider key each attempt carries
   (:func:`~saferouter.gateway.routing.plan_attempts`): the client's own, opened by the
   :class:`~saferouter.byok.keyring.Keyring` (409 when it was sealed to another build),
   or the operator's. A key with no provider keys of its own skips the keyring;
5. **pin** — a Responses follow-up (``previous_response_id``) goes only where the
   earlier response lives (:mod:`~saferouter.gateway.previous_response`: 404 when this
   key's requests did not produce it), and counts its earlier turns.

Nothing here writes: a request refused by this stage leaves no activity entry (the
admission, next, is the first write).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from ..byok.keyring import OwnKey
from ..catalog import Model
from ..keys import owner_of
from ..storage import KeyIdentity
from .dialect import ApiRequest
from .preferences import ProviderPreferences
from .preferences import apply as apply_preferences
from .previous_response import Pin, find_pin
from .routing import Plan, choose_candidates, plan_attempts, serving_api

if TYPE_CHECKING:
    from .pipeline import Ports


@attrs.frozen
class Route:
    """Where a request may go: the attempts planned, in order, and what the activity
    entry says of how they were chosen."""

    request: ApiRequest  # as routed: a pinned follow-up counts its earlier turns
    requested: Model  # the model asked for (the first known, when ids were skipped)
    requested_name: str  # … as the client named it: the activity's requested_model
    plans: list[Plan]
    notes: tuple[str, ...] = ()  # skipped ids, what the preferences dropped
    pin: Pin | None = None  # a follow-up's: says why no other provider was tried

    @property
    def note(self) -> str | None:
        """The notes as the activity entry keeps them (None: nothing to say)."""
        return "; ".join(self.notes) or None


async def route(
    ports: Ports, key: KeyIdentity, request: ApiRequest, authorization: str | None
) -> Route:
    """Route ``request`` of ``key`` (presented as ``authorization``, which opens its own
    provider keys); raises ``ApiError`` (400, 404, 409) when it can go nowhere."""
    settings = ports.settings
    prefs = ProviderPreferences.parse(request.payload.get("provider"))
    chosen = choose_candidates(settings.catalog, request.model, request.client_models)  # 1.
    chain = serving_api(settings.catalog, chosen.chain, request.api)  # 2.
    routed = apply_preferences(  # 3.
        chain,
        prefs,
        providers=settings.catalog.providers,
        stats=ports.route_stats,
        now=dt.datetime.fromtimestamp(ports.clock.wall(), dt.UTC),
    )
    own_keys = _NONE_OWN
    if key.byok:  # the common key holds none: no keyring, no set, no lookups
        own_keys = ports.keyring.own_keys(
            key.byok, {model.provider for model in routed.chain}, owner=owner_of(authorization)
        )
    plans = plan_attempts(routed.chain, settings.endpoints, own_keys)  # 4.
    pin = None
    if request.previous_response_id is not None:  # 5. a follow-up goes where its context is
        pin = await find_pin(ports.store, key.id, request.previous_response_id, settings.endpoints)
        plans, request = pin.plans(plans), pin.applied(request)
    return Route(
        request=request,
        requested=chosen.requested,
        requested_name=chosen.requested_name,
        plans=plans,
        notes=chosen.notes + routed.notes,
        pin=pin,
    )


_NONE_OWN: Mapping[str, OwnKey] = MappingProxyType({})
