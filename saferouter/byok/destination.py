"""Where the attested build sends a provider's requests — and so a client's own key.

The measurement covers the configuration, each provider's effective ``base_url`` and
``anthropic_base_url`` (where its Messages API requests go) included, but a hash says
nothing to a person. Before a key is sealed, the client reads the measured document
(``GET /attestation/measurement``), checks that it hashes to the measurement a verified
quote attests, and takes the provider's URLs from it: an operator cannot point a build
at a server of its own without that URL being shown (and, when it is plain http to
another machine, refused) before the key leaves.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from ..canonical import canonical_json
from ..errors import VerificationError


class DestinationError(VerificationError):
    """The measured document does not hash to the attested measurement, or the provider's
    requests would not go where a key may be sent."""


def provider_destination(document: Any, measurement_hex: str, provider: str) -> list[str]:
    """The URLs the build measured as ``measurement_hex`` sends ``provider``'s requests
    to: its base URL, then its Anthropic base URL when it has one (the key goes to
    both); :class:`DestinationError` when ``document`` is not what was measured, names
    no such provider, or sends them over plain http to another machine."""
    try:
        digest = hashlib.sha256(canonical_json(document)).hexdigest()
    except (TypeError, ValueError) as exc:
        raise DestinationError(f"the measured document is not canonical JSON: {exc}") from None
    if digest != measurement_hex:
        raise DestinationError(
            f"the measured document hashes to {digest}, not the attested measurement "
            f"{measurement_hex}"
        )
    providers = document.get("config", {}).get("providers", {})
    entry = providers.get(provider) if isinstance(providers, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
        raise DestinationError(f"the attested build has no provider {provider!r}")
    if entry.get("api_key_env") is None:  # the demo, or a provider that takes no key
        raise DestinationError(f"the attested build takes no provider key for {provider}")
    urls: list[str] = [entry["base_url"]]
    anthropic = entry.get("anthropic_base_url")
    if anthropic:  # absent or "": the provider serves no Messages API
        if not isinstance(anthropic, str):
            raise DestinationError(f"the attested build has no Anthropic URL for {provider}")
        urls.append(anthropic)
    for url in urls:
        if not may_carry_a_key(url):
            raise DestinationError(
                f"the attested build sends {provider} requests to {url}: a key would "
                "cross the network in the clear (only https, or http to this machine)"
            )
    return urls


def may_carry_a_key(base_url: str) -> bool:
    """https anywhere, or plain http to a loopback address (a local proxy or test)."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
