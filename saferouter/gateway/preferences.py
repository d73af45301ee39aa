"""OpenRouter's ``provider`` preferences, applied to a request's candidates (pure).

The candidates are the requested model and its catalog fallbacks, or the client's own
``models`` (:func:`~saferouter.gateway.routing.candidates`). Each of our models has one
provider, so OpenRouter's "providers of a model" are here the candidates' providers, and
its rules read (https://openrouter.ai/docs/features/provider-routing):

1. ``only`` keeps the candidates of the providers listed, ``ignore`` drops them, and
   ``max_price`` (USD per million prompt / completion tokens) drops every candidate whose
   current price is dearer in either;
2. ``order`` puts the candidates of the providers listed first, in the order listed;
3. ``sort`` (``price`` — input plus output price now; ``latency`` — the measured median
   time to first byte; ``throughput`` — the measured output tokens per second) orders
   the rest, candidates measured nowhere after those measured, in their order; a
   ``preferred_max_latency`` / ``preferred_min_throughput`` (p50) moves the candidates
   measured past it after the others;
4. ``allow_fallbacks: false`` leaves the providers of ``order`` only, or without an
   ``order``, the first remaining candidate alone.

A provider is named by its catalog id or its display name, compared without case or
punctuation (``"DeepSeek"``, ``"z-ai"`` and ``"Z.AI"`` all name theirs). A name that is
no provider here is noted, not refused: a client written for OpenRouter may list
providers this gateway never had. A rule that leaves no candidate is a 404 naming it.

OpenRouter's other fields are accepted where leaving them unapplied is honest (their
default, an empty list, ``data_collection: "allow"``); one that asks for what the
gateway cannot vouch for (``zdr: true``, ``data_collection: "deny"``, ``quantizations``,
``require_parameters: true``, ``enforce_distillable_text: true``, per-provider
``options``) is a 400 saying so, never silently dropped. The field itself is stripped
from the upstream body (``STRIPPED_FIELDS``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

import attrs

from ..catalog import Model, Provider
from ..errors import NotFound
from .preference_input import (
    check_names,
    check_unknown,
    check_unvouched,
    max_price_micro,
    optional_bool,
    p50_of,
    sort_of,
)
from .route_stats import RouteStats


class SortBy(enum.StrEnum):
    PRICE = "price"
    LATENCY = "latency"
    THROUGHPUT = "throughput"


@attrs.frozen
class ProviderPreferences:
    """A request's ``provider`` object, checked. Prices in micro-USD per million tokens
    (the catalog's unit), exact."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: SortBy | None = None
    # ``sort: {"partition": "model"}``: the models keep their order (OpenRouter sorts
    # the providers of each model; each of ours has one), so the sort changes nothing
    sort_within_model: bool = False
    max_prompt_micro_usd: Decimal | None = None
    max_completion_micro_usd: Decimal | None = None
    preferred_max_ttfb_s: float | None = None
    preferred_min_tokens_per_s: float | None = None

    @classmethod
    def parse(cls, value: object) -> ProviderPreferences | None:
        """The ``provider`` field of a request body (None: absent or null). Raises
        InvalidRequest naming the field: ``invalid_type`` / ``invalid_value`` for a bad
        shape, ``unknown_parameter``, ``unsupported_value`` for what is not supported."""
        fields = check_unknown(value)
        if fields is None:
            return None
        check_unvouched(fields)
        sort, within_model = sort_of(fields.get("sort"))
        prompt, completion = max_price_micro(fields.get("max_price"))
        return cls(
            order=check_names(fields, "order") or (),
            only=check_names(fields, "only"),
            ignore=check_names(fields, "ignore") or (),
            allow_fallbacks=optional_bool(fields, "allow_fallbacks", default=True),
            sort=SortBy(sort) if sort is not None else None,
            sort_within_model=within_model,
            max_prompt_micro_usd=prompt,
            max_completion_micro_usd=completion,
            preferred_max_ttfb_s=p50_of(fields, "preferred_max_latency"),
            preferred_min_tokens_per_s=p50_of(fields, "preferred_min_throughput"),
        )


@attrs.frozen
class Routed:
    """The candidates left, in the order to try them, and what the client should know
    about how they were chosen (for the activity entry's note)."""

    chain: tuple[Model, ...]
    notes: tuple[str, ...] = ()


def apply(
    chain: Sequence[Model],
    prefs: ProviderPreferences | None,
    *,
    providers: Mapping[str, Provider],
    stats: RouteStats,
    now: dt.datetime,
) -> Routed:
    """``chain`` under ``prefs`` (module docstring: the rules, in their order). Raises
    NotFound (404 ``no_allowed_candidate``, ``param`` the rule) when one leaves nothing."""
    if prefs is None:
        return Routed(tuple(chain))
    notes: list[str] = []
    names = _Names(providers, notes)
    left = list(chain)
    if prefs.only is not None:
        only = names.ids("only", prefs.only)
        left = _keep(left, lambda m: m.provider in only, "only", notes)
    if prefs.ignore:
        ignore = names.ids("ignore", prefs.ignore)
        left = _keep(left, lambda m: m.provider not in ignore, "ignore", notes)
    if prefs.max_prompt_micro_usd is not None or prefs.max_completion_micro_usd is not None:
        left = _keep(left, lambda m: _affordable(m, prefs, now), "max_price", notes)
    order = names.ids("order", prefs.order)
    rank = {provider: i for i, provider in enumerate(order)}
    first = sorted((m for m in left if m.provider in rank), key=lambda m: rank[m.provider])
    rest = [m for m in left if m.provider not in rank]
    if prefs.sort is not None and not prefs.sort_within_model:
        rest = _sorted(rest, prefs.sort, stats, now)
    rest = _demote_slow(rest, prefs, stats)
    if prefs.allow_fallbacks:
        return Routed(tuple(first + rest), tuple(notes))
    if order:
        if not first:
            raise _nothing_left("order", "no candidate is served by a provider of 'order'")
        return Routed(tuple(first), tuple(notes))
    return Routed(tuple((first + rest)[:1]), tuple(notes))


class _Names:
    """Provider names as clients write them, to catalog ids."""

    def __init__(self, providers: Mapping[str, Provider], notes: list[str]) -> None:
        self._ids: dict[str, str] = {}
        for provider in providers.values():
            self._ids.setdefault(_slug(provider.name), provider.id)
        for provider in providers.values():  # an id wins over another's display name
            self._ids[_slug(provider.id)] = provider.id
        self._notes = notes

    def ids(self, rule: str, names: Sequence[str]) -> tuple[str, ...]:
        found, unknown = [], []
        for name in names:
            provider = self._ids.get(_slug(name))
            if provider is None:
                unknown.append(name)
            elif provider not in found:
                found.append(provider)
        if unknown:
            self._notes.append(f"provider.{rule}: no provider here is named {', '.join(unknown)}")
        return tuple(found)


def _slug(name: str) -> str:
    return "".join(c for c in name.casefold() if c.isalnum())


def _keep(
    left: list[Model], wanted: Callable[[Model], bool], rule: str, notes: list[str]
) -> list[Model]:
    kept = [m for m in left if wanted(m)]
    if not kept:
        raise _nothing_left(rule, f"it leaves none of {', '.join(m.id for m in left)}")
    if len(kept) < len(left):
        dropped = ", ".join(m.id for m in left if not wanted(m))
        notes.append(f"provider.{rule} dropped {dropped}")
    return kept


def _affordable(model: Model, prefs: ProviderPreferences, now: dt.datetime) -> bool:
    price = model.pricing.price_at(now)
    prompt, completion = prefs.max_prompt_micro_usd, prefs.max_completion_micro_usd
    return (prompt is None or price.input <= prompt) and (
        completion is None or price.output <= completion
    )


def _sorted(models: list[Model], by: SortBy, stats: RouteStats, now: dt.datetime) -> list[Model]:
    if by is SortBy.PRICE:
        return sorted(models, key=lambda m: _price_sum(m, now))  # stable: ties keep order
    keyed = []
    for m in models:
        figures = stats.figures(m.id)
        value = None
        if figures is not None:
            value = figures.ttfb_s if by is SortBy.LATENCY else figures.output_tokens_per_s
        keyed.append((m, value))
    measured = [(m, v) for m, v in keyed if v is not None]
    unmeasured = [m for m, v in keyed if v is None]
    # lowest latency first; highest throughput first
    sign = 1.0 if by is SortBy.LATENCY else -1.0
    measured.sort(key=lambda pair: sign * pair[1])
    return [m for m, _ in measured] + unmeasured


def _price_sum(model: Model, now: dt.datetime) -> int:
    price = model.pricing.price_at(now)
    return price.input + price.output


def _demote_slow(models: list[Model], prefs: ProviderPreferences, stats: RouteStats) -> list[Model]:
    """The candidates measured past a preferred latency or throughput, moved last."""
    max_ttfb, min_rate = prefs.preferred_max_ttfb_s, prefs.preferred_min_tokens_per_s
    if max_ttfb is None and min_rate is None:
        return models

    def slow(model: Model) -> bool:
        figures = stats.figures(model.id)
        if figures is None:
            return False
        ttfb, rate = figures.ttfb_s, figures.output_tokens_per_s
        return (max_ttfb is not None and ttfb is not None and ttfb > max_ttfb) or (
            min_rate is not None and rate is not None and rate < min_rate
        )

    return [m for m in models if not slow(m)] + [m for m in models if slow(m)]


def _nothing_left(rule: str, why: str) -> NotFound:
    return NotFound(
        f"No model can serve this request under provider.{rule}: {why}.",
        param=f"provider.{rule}",
        code="no_allowed_candidate",
    )
