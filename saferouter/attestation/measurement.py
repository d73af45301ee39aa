"""The service measurement: what code and what configuration this gateway runs.

    measurement = SHA-256( canonical JSON (RFC 8785) of
        { "version": 1,
          "code":   { "<path relative to the package's parent>": "<SHA-256 hex>", … },
          "config": { "providers": {…}, "models": [...], "settings": {…} } } )

``code`` covers every ``.py``, ``.toml`` and ``py.typed`` file of the ``saferouter``
package and every file of its ``web/`` folder (the pages, package data), by path: the
files a wheel installs, so a wheel install and a checkout measure the same. ``config`` is the
catalog as loaded — providers without keys (their env variable *names*, the APIs they
serve and effective base URLs, the Anthropic one included; extra header names, not
values), models with prices in micro-USD per 1M
tokens, peak windows and fallback chains — and the settings that change behaviour
(audit sampling rate, attempts, timeouts, audience, the BYOK fee, where traces go).
Changing code, routing or prices changes the measurement. ``saferouter measure`` prints it and its
parts so anyone can recompute it from a checkout and a config.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import attrs

from ..canonical import canonical_json
from ..catalog import Pricing
from ..config import Settings

PACKAGE = Path(__file__).resolve().parent.parent
_SUFFIXES = {".py", ".toml", ".typed"}


@attrs.frozen
class Measurement:
    digest: bytes  # 32 bytes
    code: dict[str, str]
    config: dict[str, Any]

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def document(self) -> dict[str, Any]:
        """What the digest is the SHA-256 of (as canonical JSON): served whole, so a
        client can read what the attested build is configured to do — where a provider's
        requests go, at what prices — once it hashes to the attested measurement."""
        return {"version": 1, "code": self.code, "config": self.config}


def measure(settings: Settings) -> Measurement:
    code = code_manifest()
    config = config_document(settings)
    digest = hashlib.sha256(canonical_json({"version": 1, "code": code, "config": config}))
    return Measurement(digest=digest.digest(), code=code, config=config)


def code_manifest() -> dict[str, str]:
    web = PACKAGE / "web"
    files = [
        p
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and (p.suffix in _SUFFIXES or web in p.parents)
    ]
    base = PACKAGE.parent
    return {
        p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(files)
    }


def config_document(settings: Settings) -> dict[str, Any]:
    providers = {
        pid: {
            "name": ep.provider.name,
            "kind": ep.provider.kind,
            "base_url": ep.base_url,
            # where messages go: a client's own key goes there too
            "anthropic_base_url": ep.anthropic_base_url,
            "apis": sorted(ep.provider.apis),
            "api_key_env": ep.provider.api_key_env,
            "prefixes": list(ep.provider.prefixes),
            "header_names": sorted(ep.provider.headers),
            "default_pricing": _pricing(ep.provider.default_pricing),
        }
        for pid, ep in sorted(settings.endpoints.items())
    }
    models = [
        {
            "id": m.id,
            "provider": m.provider,
            "upstream": m.upstream,
            "context_length": m.context_length,
            "max_output": m.max_output,
            "pricing": _pricing(m.pricing),
            "capabilities": sorted(m.capabilities),
            "fallbacks": list(m.fallbacks),
            "body_defaults": dict(m.body_defaults),
            "hedge_after_ms": m.hedge_after_ms,
        }
        for m in settings.catalog.models.values()
    ]
    t = settings.timeouts
    return {
        "providers": providers,
        "models": models,
        "settings": {
            "audit_rate_ppm": settings.audit_rate_ppm,
            "receipts": settings.receipts,
            "max_attempts": settings.max_attempts,
            "timeouts_ms": {
                "connect": int(t.connect_s * 1000),
                "first_byte": int(t.first_byte_s * 1000),
                "idle": int(t.idle_s * 1000),
                "total": int(t.total_s * 1000),
                "deadline": int(t.request_deadline_s * 1000),
            },
            "max_body_bytes": settings.max_body_bytes,
            "audience": settings.audience,
            # what a request served with the client's own provider key is charged
            "byok_fee_bp": settings.catalog.byok_fee_bp,
            # where each request's metadata (spans: models, tokens, times; never text)
            # is sent, or null for nowhere
            "otel_traces_url": settings.otel_traces_url,
        },
    }


def _pricing(pricing: Pricing | None) -> dict[str, Any] | None:
    if pricing is None:
        return None
    doc: dict[str, Any] = {"base": attrs.asdict(pricing.base)}
    if pricing.peak is not None:
        doc["peak"] = attrs.asdict(pricing.peak)
        doc["peak_windows"] = [attrs.asdict(w) for w in pricing.peak_windows]
    return doc
