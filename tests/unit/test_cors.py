"""The CORS policy's decisions (cors.py) and the origins it is configured with."""

from __future__ import annotations

import pytest

from saferouter.cors import CorsPolicy, is_preflight, parse_origin
from saferouter.errors import ConfigError

APP = "https://app.example.com"
POLICY = CorsPolicy(frozenset({APP, "http://127.0.0.1:5173"}))


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM:443", "https://app.example.com"),  # as a browser sends it
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://localhost:80", "http://localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_an_origin_is_kept_as_browsers_serialize_it(given: str, origin: str) -> None:
    assert parse_origin(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "*",
        "null",
        "",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/app",
        "https://app.example.com?x=1",
        "https://app.example.com#top",
        "https://app.example.com?",
        "ftp://app.example.com",
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "https://[::1",
    ],
)
def test_anything_else_is_a_clear_config_error(given: str) -> None:
    with pytest.raises(ConfigError, match="scheme://host"):
        parse_origin(given)


@pytest.mark.parametrize(
    ("path", "covered"),
    [
        ("/v1/chat/completions", True),
        ("/v1/models", True),
        ("//v1/keys", True),
        ("/api/v1/chat/completions", True),
        ("/", False),
        ("/models", False),
        ("/attestation", False),
        ("/v10/x", False),
        ("/v1", False),
    ],
)
def test_only_the_api_is_covered(path: str, covered: bool) -> None:
    assert POLICY.covers(path) is covered


def test_only_a_listed_origin_exactly_is_allowed() -> None:
    assert POLICY.allowed([(b"origin", APP.encode())]) == APP.encode()
    for other in (APP + ".evil.test", "http://app.example.com", APP + ":8443", "null"):
        assert POLICY.allowed([(b"origin", other.encode())]) is None
    assert POLICY.allowed([(b"host", b"x")]) is None


def test_a_preflight_allows_the_origin_methods_and_asked_headers() -> None:
    asked = [
        (b"origin", APP.encode()),
        (b"access-control-request-method", b"POST"),
        (b"access-control-request-headers", b"Authorization, content-type,X-Stainless-OS"),
    ]
    assert is_preflight("OPTIONS", asked) and not is_preflight("POST", asked)
    assert not is_preflight("OPTIONS", asked[:1])
    answer = dict(POLICY.preflight(APP.encode(), asked))
    assert answer[b"access-control-allow-origin"] == APP.encode()
    assert b"POST" in answer[b"access-control-allow-methods"]
    assert answer[b"access-control-allow-headers"] == b"authorization, content-type, x-stainless-os"
    assert b"Origin" in answer[b"vary"]
    assert b"access-control-allow-credentials" not in answer


def test_a_preflight_asking_for_no_field_name_gets_no_headers_allowed() -> None:
    asked = [(b"access-control-request-headers", b"authorization, bad header")]
    assert b"access-control-allow-headers" not in dict(POLICY.preflight(APP.encode(), asked))


def test_a_response_exposes_what_it_carries_of_what_clients_read() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-saferouter-request-id", b"req_1"),
        (b"x-saferouter-request-id", b"req_1"),
        (b"X-RateLimit-Remaining", b"9"),
        (b"server-timing", b"gateway;dur=1"),
        (b"retry-after", b"3"),
        (b"set-cookie", b"no"),
    ]
    added = POLICY.response(APP.encode(), headers)[len(headers) :]
    assert dict(added) == {
        b"access-control-allow-origin": APP.encode(),
        b"vary": b"Origin",
        b"access-control-expose-headers": (
            b"x-saferouter-request-id, X-RateLimit-Remaining, server-timing, retry-after"
        ),
    }


def test_a_response_to_another_origin_only_varies_by_it() -> None:
    headers = [(b"x-saferouter-request-id", b"req_1")]
    assert POLICY.response(None, headers) == [*headers, (b"vary", b"Origin")]
