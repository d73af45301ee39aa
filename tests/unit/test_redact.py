"""Redaction of credentials from upstream text: text in, text out."""

from __future__ import annotations

import json

import pytest

from saferouter.gateway.redact import REDACTED, Redactor
from saferouter.gateway.upstream import upstream_error

KEY = "zai.9f8e7d6c5b4a3f2e1d0c/b+a=9"  # a provider key shaped like no known key
REDACTOR = Redactor.for_key(KEY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", f"Authorization: {REDACTED}"),
        ("bearer xyz", REDACTED),
        ('{"auth": "Bearer abc"}', f'{{"auth": "{REDACTED}"}}'),
        ("invalid key sk-proj-****************abcd.", f"invalid key {REDACTED}"),
        ("key sk-sr-AbC_dEf-123 revoked", f"key {REDACTED} revoked"),
        ("sk_live_12345678", REDACTED),
        ("Basic dXNlcjpwYXNzd29yZA==", REDACTED),
        (f"you sent {KEY}!", f"you sent {REDACTED}!"),
        ("url ...?key=zai.9f8e7d6c5b4a3f2e1d0c%2Fb%2Ba%3D9&x", f"url ...?key={REDACTED}&x"),
        # kept: words that only look a little like credentials
        ("the basic tier allows 10 requests", "the basic tier allows 10 requests"),
        ("task-123 disk-full sk", "task-123 disk-full sk"),
        ("max_tokens is too large", "max_tokens is too large"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert REDACTOR.text(text) == expected


def test_the_key_inside_a_json_string_is_redacted_in_every_form() -> None:
    body = json.dumps({"error": {"message": f"echo: {KEY}"}}).encode()  # "/" stays, + too
    escaped = b'{"error": {"message": "echo: zai.9f8e7d6c5b4a3f2e1d0c\\/b+a=9"}}'
    for raw in (body, escaped):
        message = json.loads(REDACTOR.event(raw))["error"]["message"]
        assert message == f"echo: {REDACTED}" and KEY not in message


def test_known_redacts_only_the_key_in_relayed_bytes() -> None:
    answer = f"use Bearer sk-example in your header; mine is {KEY}".encode()
    assert (
        REDACTOR.known(answer)
        == f"use Bearer sk-example in your header; mine is {REDACTED}".encode()
    )
    assert REDACTOR.known(b"nothing here") == b"nothing here"


def test_short_or_missing_keys_redact_only_shapes() -> None:
    assert Redactor.for_key("abc").text("abc Bearer t") == f"abc {REDACTED}"
    assert Redactor.for_key(None).known(b"abc") == b"abc"


@pytest.mark.parametrize("status", [400, 422, 500, 503, 504])
def test_upstream_errors_never_carry_the_key(status: int) -> None:
    body = json.dumps(
        {
            "error": {
                "message": f"bad request, headers: Authorization: Bearer {KEY}",
                "code": f"key_{KEY}",
                "param": KEY,
                "type": f"Bearer {KEY}",
            }
        }
    ).encode()
    error = upstream_error(status, body, [], "Z.AI", redactor=REDACTOR)
    rendered = error.body().decode()
    assert KEY not in rendered and REDACTED in error.message
    plain = upstream_error(status, f"proxy: {KEY}".encode(), [], "Z.AI", redactor=REDACTOR)
    assert KEY not in plain.body().decode()
