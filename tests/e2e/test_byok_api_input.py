"""``/v1/byok`` refuses what cannot serve, against a real `saferouter serve`: a provider
outside the catalog (or the demo one), a sealed key that is not base64, too long, sealed
to another key, altered or empty — 400 ``invalid_sealed_key``, nothing stored — and any
body that is not the JSON object asked for: always an OpenAI-shaped 4xx, never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from saferouter.byok import sealing
from saferouter.keys import hash_key

from ..processes import Served
from .byok_api import (
    CANARY,
    Api,
    attested,
    data_dir,
    error,
    other_public_key,
    sealed_for,
    sealed_raw,
    served,
    stored,
    user,
)

__all__ = ["attested", "data_dir", "served", "user"]  # the fixtures this module uses


@pytest.mark.parametrize("provider", ["demo", "openai", "DeepSeek"])
def test_only_a_catalog_provider_with_a_key_can_have_one(
    user: tuple[str, Api], attested: dict[str, Any], provider: str
) -> None:
    _, api = user
    for method, options in (
        (
            "PUT",
            {
                "json": {
                    "sealed_key": base64.b64encode(sealed_for(attested, api, "deepseek")).decode()
                }
            },
        ),
        ("PATCH", {"json": {"byok_fallback": True}}),
        ("DELETE", {}),
    ):
        refused = api(method, f"/v1/byok/{provider}", **options)
        assert error(refused) == (404, "unknown_provider", None), refused.text
        message = refused.json()["error"]["message"]
        assert "deepseek, zai" in message and "demo" not in message
    assert api("GET", "/v1/byok").json()["data"] == []


def altered(sealed: bytes) -> bytes:
    return sealed[:-1] + bytes([sealed[-1] ^ 1])


BAD_SEALED_KEYS: dict[str, Callable[[dict[str, Any], Api], object]] = {
    "not base64": lambda a, api: "not*base64!",
    "url-safe base64": lambda a, api: base64.urlsafe_b64encode(b"\xfb\xff" * 40).decode(),
    "no padding": lambda a, api: (
        base64.b64encode(sealed_for(a, api, "deepseek")).decode().rstrip("=")
    ),
    "too long": lambda a, api: base64.b64encode(bytes(sealing.SEALED_KEY_MAX_BYTES + 1)).decode(),
    "too short": lambda a, api: base64.b64encode(bytes(sealing.SEAL_OVERHEAD_BYTES)).decode(),
    "sealed to another public key": lambda a, api: sealing.seal(
        other_public_key(), CANARY, sealing.Binding(hash_key(api.secret), "deepseek")
    ),
    "sealed by another SafeRouter key": lambda a, api: sealing.seal(
        bytes.fromhex(a["byok_public_key"]), CANARY, sealing.Binding("ab" * 32, "deepseek")
    ),
    "sealed for another provider": lambda a, api: sealed_for(a, api, "zai"),
    "no binding (a bare key)": lambda a, api: sealed_raw(a, CANARY.encode()),
    "empty plaintext": lambda a, api: sealed_raw(a, b""),
    "altered": lambda a, api: altered(sealed_for(a, api, "deepseek")),
    "a space in the key": lambda a, api: sealed_raw(a, b"sk with space"),
    "missing": lambda a, api: "",
    "not a string": lambda a, api: 12345,
}


@pytest.mark.parametrize("case", BAD_SEALED_KEYS)
def test_a_sealed_key_that_cannot_serve_is_refused_and_nothing_stored(
    user: tuple[str, Api], attested: dict[str, Any], data_dir: Path, case: str
) -> None:
    key_id, api = user
    value = BAD_SEALED_KEYS[case](attested, api)
    if isinstance(value, bytes):
        value = base64.b64encode(value).decode()
    refused = api("PUT", "/v1/byok/deepseek", json={"sealed_key": value})
    assert error(refused) == (400, "invalid_sealed_key", "sealed_key"), refused.text
    assert "byok_public_key of a verified quote" in refused.json()["error"]["message"]
    assert stored(data_dir, key_id) == []


BAD_BODIES: dict[str, dict[str, Any]] = {
    "text/plain": {"content": b'{"sealed_key": "AAAA"}', "headers": {"Content-Type": "text/plain"}},
    "a form": {"data": {"sealed_key": "AAAA"}},
    "not JSON": {"content": b"{sealed_key: AAAA", "headers": {"Content-Type": "application/json"}},
    "a JSON array": {"json": [{"sealed_key": "AAAA"}]},
    "invalid UTF-8": {
        "content": b'{"sealed_key": "\xff"}',
        "headers": {"Content-Type": "application/json"},
    },
    "an unknown field": {"json": {"sealed_key": "AAAA", "api_key": "x"}},
    "a fallback that is no boolean": {"json": {"sealed_key": "AAAA", "byok_fallback": "yes"}},
    "over the BYOK body limit": {"json": {"sealed_key": "A" * 20_000}},
    "over the gateway's body limit": {
        "content": b" " * (9 * 1024 * 1024),
        "headers": {"Content-Type": "application/json"},
    },
}
BAD_BODY_ANSWERS = {
    "text/plain": (415, "unsupported_media_type"),
    "a form": (415, "unsupported_media_type"),
    "not JSON": (400, "invalid_json"),
    "a JSON array": (400, "invalid_body"),
    "invalid UTF-8": (400, "invalid_json"),
    "an unknown field": (400, "invalid_body"),
    "a fallback that is no boolean": (400, "invalid_type"),
    "over the BYOK body limit": (413, "request_too_large"),
    "over the gateway's body limit": (413, "request_too_large"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_body_is_an_openai_shaped_4xx(
    user: tuple[str, Api], data_dir: Path, case: str
) -> None:
    key_id, api = user
    refused = api("PUT", "/v1/byok/deepseek", **BAD_BODIES[case])
    assert error(refused)[:2] == BAD_BODY_ANSWERS[case], refused.text
    assert stored(data_dir, key_id) == []


def test_patch_needs_a_boolean(user: tuple[str, Api], attested: dict[str, Any]) -> None:
    _, api = user
    assert api.put("deepseek", sealed_for(attested, api, "deepseek")).status_code == 200
    for body, code in (({}, "missing_required_parameter"), ({"byok_fallback": 1}, "invalid_type")):
        refused = api("PATCH", "/v1/byok/deepseek", json=body)
        assert error(refused) == (400, code, "byok_fallback")
    assert api("GET", "/v1/byok").json()["data"][0]["byok_fallback"] is False
    # no Content-Type at all is read as JSON (only a wrong one is refused)
    unlabelled = api("PATCH", "/v1/byok/deepseek", content=b'{"byok_fallback": true}')
    assert unlabelled.status_code == 200 and unlabelled.json()["byok_fallback"] is True


def test_no_key_no_answer(served: Served) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        path = "/v1/byok" if method == "GET" else "/v1/byok/deepseek"
        refused = httpx.request(method, served.url + path, json={}, timeout=30)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "missing_api_key"
