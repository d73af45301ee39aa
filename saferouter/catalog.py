"""The catalog: providers, models, prices and fallback chains, loaded from TOML.

The shipped default is ``catalog.toml`` beside this module; ``--config FILE`` (or
``SAFEROUTER_CONFIG``) replaces it whole. Adding an OpenAI-compatible provider is a
catalog change only: a ``[providers.NAME]`` table and some ``[[models]]``.

Prices are written in the TOML in USD per million tokens and held as integer
micro-USD per million tokens (``$0.0028`` → ``2800``), so no float reaches the books.
The ``[settings]`` table holds what applies to every model: ``byok_fee_percent``, what a
request served with the client's own provider key is charged, as a percentage of the
model's price (held as integer basis points).

A model's ``body_defaults`` are request members added where the client set none (e.g.
DeepSeek's ``thinking = { type = "disabled" }``). They are Chat Completions fields, and
are added to chat completions requests only: the Responses and Messages APIs name their
fields otherwise (Anthropic's ``thinking`` enabled needs ``budget_tokens``; Responses has
no ``thinking``), so a request of those APIs goes up as the client sent it.
"""

from __future__ import annotations

import datetime as dt
import enum
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs
import cattrs

from .errors import ConfigError, ModelNotFound

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.toml")
CAPABILITIES = frozenset({"reasoning", "tools", "vision", "json"})
PROVIDER_KINDS = frozenset({"openai", "demo"})
BASIS_POINTS = 10_000  # 100 %


class Api(enum.StrEnum):
    """The APIs the gateway speaks (``gateway.dialect``); a provider lists those it
    serves in the catalog's ``apis``."""

    CHAT = "chat"  # POST /v1/chat/completions
    RESPONSES = "responses"  # POST /v1/responses
    MESSAGES = "messages"  # POST /v1/messages


@attrs.frozen
class Price:
    """Micro-USD per million tokens. ``cache_write``: prompt tokens written to the
    provider's cache (Anthropic's ``cache_creation_input_tokens``), which may cost more
    than ``input``; the catalog's default is ``input``."""

    input: int
    cached_input: int
    output: int
    cache_write: int = attrs.field(
        default=attrs.Factory(lambda price: price.input, takes_self=True)
    )

    @property
    def dearest_input(self) -> int:
        """The most a prompt token can cost, whether read, cached or written to a cache."""
        return max(self.input, self.cached_input, self.cache_write)

    def fee(self, fee_bp: int) -> Price:
        """``fee_bp`` basis points of this price, each part rounded up to a whole
        micro-USD per million tokens: what an attempt with the client's own provider key
        is billed at (the provider bills the client; the gateway only its fee)."""
        return Price(
            input=_bp_of(self.input, fee_bp),
            cached_input=_bp_of(self.cached_input, fee_bp),
            output=_bp_of(self.output, fee_bp),
            cache_write=_bp_of(self.cache_write, fee_bp),
        )


def _bp_of(micro: int, fee_bp: int) -> int:
    return -(-micro * fee_bp // BASIS_POINTS)


@attrs.frozen
class PeakWindow:
    """A daily UTC window [start, end) in minutes after midnight."""

    start_minute: int
    end_minute: int
    weekdays_only: bool

    def contains(self, when: dt.datetime) -> bool:
        when = when.astimezone(dt.UTC)
        if self.weekdays_only and when.weekday() >= 5:
            return False
        minute = when.hour * 60 + when.minute
        return self.start_minute <= minute < self.end_minute


@attrs.frozen
class Pricing:
    """Base (off-peak) prices, and optional peak prices inside peak windows."""

    base: Price
    peak: Price | None = None
    peak_windows: tuple[PeakWindow, ...] = ()

    def price_at(self, when: dt.datetime) -> Price:
        if self.peak is not None and any(w.contains(when) for w in self.peak_windows):
            return self.peak
        return self.base


@attrs.frozen
class Provider:
    id: str
    name: str
    kind: str
    base_url: str
    api_key_env: str | None
    base_url_env: str | None
    prefixes: tuple[str, ...]
    headers: Mapping[str, str]
    default_pricing: Pricing | None
    demo_chunk_delay_ms: int
    apis: frozenset[Api] = frozenset({Api.CHAT})  # the APIs it serves
    # where ``messages`` goes (chat and responses go under base_url); "" when none
    anthropic_base_url: str = ""
    anthropic_base_url_env: str | None = None


@attrs.frozen
class Model:
    id: str
    provider: str
    upstream: str
    name: str
    context_length: int
    max_output: int
    pricing: Pricing
    capabilities: frozenset[str]
    fallbacks: tuple[str, ...]
    body_defaults: Mapping[str, Any]  # chat completions requests only (module docstring)
    description: str
    deprecated: str | None = None
    hedge_after_ms: int | None = None  # start the next candidate after this long silent
    listed: bool = True  # False for ids resolved by prefix rather than listed


@attrs.frozen
class Catalog:
    providers: Mapping[str, Provider]
    models: Mapping[str, Model]
    byok_fee_bp: int = 0  # [settings] byok_fee_percent, in basis points of a model's price

    def resolve(self, model_id: str) -> Model:
        """The model a client's ``model`` names: a catalog id, ``provider/name``, or a
        name claimed by a provider's prefix. Raises :class:`ModelNotFound`."""
        model = self.models.get(model_id)
        if model is not None:
            return model
        provider_id, slash, rest = model_id.partition("/")
        if slash and provider_id in self.providers and rest:
            listed = self.models.get(rest)
            if listed is not None and listed.provider == provider_id:
                return listed
            return self._unlisted(self.providers[provider_id], model_id, rest)
        for provider in self.providers.values():
            if any(model_id.startswith(p) for p in provider.prefixes):
                return self._unlisted(provider, model_id, model_id)
        raise ModelNotFound(f"The model `{model_id}` does not exist", param="model")

    def _unlisted(self, provider: Provider, model_id: str, upstream: str) -> Model:
        if provider.default_pricing is None:
            raise ModelNotFound(
                f"The model `{model_id}` is not in the catalog and provider "
                f"`{provider.id}` has no default price to bill it by",
                param="model",
            )
        return Model(
            id=model_id,
            provider=provider.id,
            upstream=upstream,
            name=upstream,
            context_length=0,
            max_output=0,
            pricing=provider.default_pricing,
            capabilities=frozenset(),
            fallbacks=(),
            body_defaults={},
            description="",
            listed=False,
        )


# --- TOML shape -----------------------------------------------------------------------


@attrs.define
class _RawPrice:
    input: Any
    output: Any
    cached_input: Any = None
    cache_write: Any = None


@attrs.define
class _RawPeak:
    input: Any
    output: Any
    hours_utc: list[str]
    cached_input: Any = None
    cache_write: Any = None
    weekdays_only: bool = True


@attrs.define
class _RawProvider:
    name: str
    kind: str = "openai"
    base_url: str = ""
    api_key_env: str | None = None
    base_url_env: str | None = None
    prefixes: list[str] = attrs.Factory(list)
    headers: dict[str, str] = attrs.Factory(dict)
    default_price: _RawPrice | None = None
    demo_chunk_delay_ms: int = 0
    apis: list[str] | None = None
    anthropic_base_url: str = ""
    anthropic_base_url_env: str | None = None


@attrs.define
class _RawModel:
    id: str
    provider: str
    context_length: int
    max_output: int
    price: _RawPrice
    upstream: str | None = None
    name: str | None = None
    peak: _RawPeak | None = None
    capabilities: list[str] = attrs.Factory(list)
    fallbacks: list[str] = attrs.Factory(list)
    body_defaults: dict[str, Any] = attrs.Factory(dict)
    description: str = ""
    deprecated: str | None = None
    hedge_after_ms: int | None = None


@attrs.define
class _RawSettings:
    byok_fee_percent: Any = 0


@attrs.define
class _RawCatalog:
    providers: dict[str, _RawProvider]
    models: list[_RawModel] = attrs.Factory(list)
    settings: _RawSettings = attrs.Factory(_RawSettings)


# Prices stay `Any` in the raw shape; usd_per_million_to_micro checks them exactly.
_converter = cattrs.Converter(forbid_extra_keys=True)


def load_catalog(path: Path) -> Catalog:
    """Read and check a catalog file. Raises :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read catalog {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"catalog {path} is not valid TOML: {exc}") from exc
    return parse_catalog(data, source=str(path))


def parse_catalog(data: Mapping[str, Any], *, source: str = "catalog") -> Catalog:
    """Build a :class:`Catalog` from parsed TOML. Raises :class:`ConfigError`."""
    try:
        raw = _converter.structure(dict(data), _RawCatalog)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        detail = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ConfigError(f"{source}: {detail}") from exc
    providers = {pid: _provider(pid, rp, source) for pid, rp in raw.providers.items()}
    models: dict[str, Model] = {}
    for rm in raw.models:
        if rm.id in models:
            raise ConfigError(f"{source}: model {rm.id!r} is listed twice")
        if rm.provider not in providers:
            raise ConfigError(f"{source}: model {rm.id!r} names unknown provider {rm.provider!r}")
        models[rm.id] = _model(rm, source)
    for model in models.values():
        for fb in model.fallbacks:
            if fb not in models:
                raise ConfigError(f"{source}: fallback {fb!r} of {model.id!r} is not a model")
            if fb == model.id:
                raise ConfigError(f"{source}: {model.id!r} falls back to itself")
            missing = model.capabilities - models[fb].capabilities
            if missing:
                raise ConfigError(
                    f"{source}: fallback {fb!r} of {model.id!r} lacks {sorted(missing)}"
                )
    fee_bp = percent_to_bp(raw.settings.byok_fee_percent, f"{source}: settings.byok_fee_percent")
    return Catalog(providers=providers, models=models, byok_fee_bp=fee_bp)


def _provider(pid: str, rp: _RawProvider, source: str) -> Provider:
    if rp.kind not in PROVIDER_KINDS:
        raise ConfigError(f"{source}: provider {pid!r} has unknown kind {rp.kind!r}")
    if rp.kind == "openai" and not rp.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: provider {pid!r} needs an http(s) base_url")
    apis = _apis(pid, rp, source)
    if rp.anthropic_base_url and not rp.anthropic_base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: provider {pid!r} needs an http(s) anthropic_base_url")
    if rp.kind == "openai" and Api.MESSAGES in apis and not rp.anthropic_base_url:
        raise ConfigError(
            f"{source}: provider {pid!r} serves messages: it needs an anthropic_base_url"
        )
    return Provider(
        id=pid,
        name=rp.name,
        kind=rp.kind,
        base_url=rp.base_url.rstrip("/"),
        api_key_env=rp.api_key_env,
        base_url_env=rp.base_url_env,
        prefixes=tuple(rp.prefixes),
        headers=dict(rp.headers),
        default_pricing=(
            Pricing(base=_price(rp.default_price, f"{source}: provider {pid!r}"))
            if rp.default_price
            else None
        ),
        demo_chunk_delay_ms=rp.demo_chunk_delay_ms,
        apis=apis,
        anthropic_base_url=rp.anthropic_base_url.rstrip("/"),
        anthropic_base_url_env=rp.anthropic_base_url_env,
    )


def _apis(pid: str, rp: _RawProvider, source: str) -> frozenset[Api]:
    """The provider's ``apis``: chat alone when unset; the demo speaks all of them."""
    if rp.apis is None:
        return frozenset(Api) if rp.kind == "demo" else frozenset({Api.CHAT})
    known = {api.value for api in Api}
    unknown = sorted(set(rp.apis) - known)
    if unknown or not rp.apis:
        raise ConfigError(
            f"{source}: provider {pid!r} apis must list some of {sorted(known)}"
            + (f", not {unknown}" if unknown else "")
        )
    return frozenset(Api(name) for name in rp.apis)


def _model(rm: _RawModel, source: str) -> Model:
    where = f"{source}: model {rm.id!r}"
    unknown = set(rm.capabilities) - CAPABILITIES
    if unknown:
        raise ConfigError(f"{where}: unknown capabilities {sorted(unknown)}")
    if rm.context_length < 0 or rm.max_output < 0:
        raise ConfigError(f"{where}: context_length and max_output must be ≥ 0")
    if rm.hedge_after_ms is not None and rm.hedge_after_ms < 1:
        raise ConfigError(f"{where}: hedge_after_ms must be ≥ 1 (omit it to turn hedging off)")
    peak = None
    windows: tuple[PeakWindow, ...] = ()
    if rm.peak is not None:
        raw_peak = rm.peak
        peak = _price(
            _RawPrice(raw_peak.input, raw_peak.output, raw_peak.cached_input, raw_peak.cache_write),
            where,
        )
        windows = tuple(_window(h, rm.peak.weekdays_only, where) for h in rm.peak.hours_utc)
    return Model(
        id=rm.id,
        provider=rm.provider,
        upstream=rm.upstream or rm.id,
        name=rm.name or rm.id,
        context_length=rm.context_length,
        max_output=rm.max_output,
        pricing=Pricing(base=_price(rm.price, where), peak=peak, peak_windows=windows),
        capabilities=frozenset(rm.capabilities),
        fallbacks=tuple(rm.fallbacks),
        body_defaults=dict(rm.body_defaults),
        description=rm.description,
        deprecated=rm.deprecated,
        hedge_after_ms=rm.hedge_after_ms,
    )


def usd_per_million_to_micro(value: object, where: str = "price") -> int:
    """``"0.0028"`` (USD per 1M tokens) → ``2800`` (micro-USD per 1M tokens), exactly."""
    micro = _scaled(value, 1_000_000, where, "price")
    if micro < 0 or micro != micro.to_integral_value():
        raise ConfigError(f"{where}: {value!r} must be ≥ 0 with at most 6 decimals")
    return int(micro)


def percent_to_bp(value: object, where: str) -> int:
    """``"2.5"`` (percent, 0 to 100, at most two decimals) → ``250`` basis points, exactly."""
    bp = _scaled(value, 100, where, "percentage")
    if not 0 <= bp <= BASIS_POINTS or bp != bp.to_integral_value():
        raise ConfigError(f"{where}: {value!r} must be 0 to 100 with at most 2 decimals")
    return int(bp)


def _scaled(value: object, scale: int, where: str, what: str) -> Decimal:
    """A TOML string or number, read exactly as written (a float by its shortest text),
    times ``scale``; a :class:`ConfigError` naming ``what`` for anything else, NaN and
    infinities included."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: {value!r} is not a {what}")
    try:
        scaled = Decimal(str(value)) * scale
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: {value!r} is not a {what}") from exc
    if not scaled.is_finite():
        raise ConfigError(f"{where}: {value!r} is not a {what}")
    return scaled


def _price(rp: _RawPrice, where: str) -> Price:
    input_micro = usd_per_million_to_micro(rp.input, where)
    cached = rp.cached_input if rp.cached_input is not None else rp.input
    cache_write = rp.cache_write if rp.cache_write is not None else rp.input
    return Price(
        input=input_micro,
        cached_input=usd_per_million_to_micro(cached, where),
        output=usd_per_million_to_micro(rp.output, where),
        cache_write=usd_per_million_to_micro(cache_write, where),
    )


def _window(text: str, weekdays_only: bool, where: str) -> PeakWindow:
    try:
        start, end = (_minute(part) for part in text.split("-"))
    except ValueError as exc:
        raise ConfigError(f"{where}: peak window {text!r} is not HH:MM-HH:MM") from exc
    if not start < end:
        raise ConfigError(f"{where}: peak window {text!r} ends before it starts")
    return PeakWindow(start_minute=start, end_minute=end, weekdays_only=weekdays_only)


def _minute(hhmm: str) -> int:
    hours, _, minutes = hhmm.strip().partition(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(hhmm)
    return h * 60 + m
