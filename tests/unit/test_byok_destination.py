"""Where a provider key goes, read from the measured document (saferouter/byok/destination.py)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from saferouter.attestation.measurement import measure
from saferouter.byok.destination import DestinationError, provider_destination
from saferouter.canonical import canonical_json
from saferouter.catalog import Api
from saferouter.config import load_settings


def document(**providers: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "code": {"saferouter/x.py": "00" * 32},
        "config": {"providers": providers},
    }


def measured(doc: Any) -> str:
    return hashlib.sha256(canonical_json(doc)).hexdigest()


DEEPSEEK = {"base_url": "https://api.deepseek.com", "api_key_env": "DEEPSEEK_API_KEY"}


@pytest.mark.parametrize(
    "base_url",
    ["https://api.deepseek.com", "http://127.0.0.1:9100/v1", "http://[::1]:80", "http://localhost"],
)
def test_https_or_loopback_http_is_where_the_key_goes(base_url: str) -> None:
    doc = document(deepseek={**DEEPSEEK, "base_url": base_url})
    assert provider_destination(doc, measured(doc), "deepseek") == [base_url]


def test_a_document_that_is_not_the_measured_one_is_refused() -> None:
    doc = document(deepseek=DEEPSEEK)
    attested = measured(doc)
    bent = copy.deepcopy(doc)
    bent["config"]["providers"]["deepseek"]["base_url"] = "https://collector.example"
    with pytest.raises(DestinationError, match="not the attested measurement"):
        provider_destination(bent, attested, "deepseek")


@pytest.mark.parametrize(
    ("providers", "provider", "message"),
    [
        ({"deepseek": DEEPSEEK}, "zai", "has no provider 'zai'"),
        ({"demo": {"base_url": "", "api_key_env": None}}, "demo", "takes no provider key"),
        ({"deepseek": {**DEEPSEEK, "base_url": "http://10.0.0.5/v1"}}, "deepseek", "in the clear"),
        ({"deepseek": {**DEEPSEEK, "base_url": "ftp://x"}}, "deepseek", "in the clear"),
        ({"deepseek": {**DEEPSEEK, "base_url": "https://"}}, "deepseek", "in the clear"),
        ({"deepseek": "https://api.deepseek.com"}, "deepseek", "has no provider"),
    ],
)
def test_what_cannot_carry_a_key_is_refused(
    providers: dict[str, Any], provider: str, message: str
) -> None:
    doc = document(**providers)
    with pytest.raises(DestinationError, match=message):
        provider_destination(doc, measured(doc), provider)


def test_a_document_that_is_not_json_is_refused() -> None:
    with pytest.raises(DestinationError, match="not canonical JSON"):
        provider_destination({"version": 1.5}, "00" * 32, "deepseek")


# -- the Anthropic base URL (issue 15): messages carry the key there too

ANTHROPIC = "https://api.deepseek.com/anthropic"


def test_the_anthropic_base_url_is_shown_after_the_base_url() -> None:
    doc = document(deepseek={**DEEPSEEK, "anthropic_base_url": ANTHROPIC})
    assert provider_destination(doc, measured(doc), "deepseek") == [DEEPSEEK["base_url"], ANTHROPIC]


@pytest.mark.parametrize(
    ("anthropic", "message"),
    [
        ("http://10.0.0.5/anthropic", "in the clear"),
        ("ftp://api.deepseek.com", "in the clear"),
        (["https://api.deepseek.com/anthropic"], "no Anthropic URL"),
    ],
)
def test_an_anthropic_url_that_cannot_carry_a_key_is_refused(anthropic: Any, message: str) -> None:
    doc = document(deepseek={**DEEPSEEK, "anthropic_base_url": anthropic})
    with pytest.raises(DestinationError, match=message):
        provider_destination(doc, measured(doc), "deepseek")


def test_the_measurement_covers_the_anthropic_url_the_messages_go_to(tmp_path: Path) -> None:
    """The URL a client's key is sent to for messages is the measured one, env override
    included: pointing it elsewhere changes the measurement (a key is never sent to an
    unmeasured Anthropic URL)."""
    collector = "https://collector.example/anthropic"
    shipped = load_settings({}, data_dir=tmp_path / "a")
    bent = load_settings({"DEEPSEEK_ANTHROPIC_BASE_URL": collector}, data_dir=tmp_path / "b")
    assert bent.endpoints["deepseek"].url(Api.MESSAGES) == collector
    doc = measure(bent).document()
    assert provider_destination(doc, measure(bent).hex, "deepseek")[1] == collector
    assert measure(shipped).hex != measure(bent).hex
    with pytest.raises(DestinationError, match="not the attested measurement"):
        provider_destination(doc, measure(shipped).hex, "deepseek")
