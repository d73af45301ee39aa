"""How provider error answers become client errors (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from saferouter.gateway.redact import Redactor
from saferouter.gateway.upstream import upstream_error

from ..recordings import RECORDINGS

NONE = Redactor()  # no provider key: only credential shapes are redacted


def test_deepseek_octet_stream_error_keeps_its_message(testdata: object) -> None:
    assert RECORDINGS is not None
    body = (RECORDINGS / "errors/deepseek__400_invalid_request_octet_stream.json").read_bytes()
    error = upstream_error(400, body, [], "DeepSeek", redactor=NONE)
    assert error.status == 400
    assert error.message == "No tool output found for tool call call-a."
    assert error.code == "invalid_request_error"


def reported_errors() -> Iterator[tuple[int, bytes, Any]]:
    """The complete raw-JSON error bodies quoted in GitHub issues: status, bytes, JSON."""
    assert RECORDINGS is not None
    reported = json.loads((RECORDINGS / "errors/reported_in_issues.json").read_text())
    for item in reported["errors"]:
        if not item["form"].startswith("raw-json") or not item.get("status"):
            continue
        try:
            body = json.loads(item["body"])
        except ValueError:
            continue  # truncated in the issue
        yield int(item["status"]), item["body"].encode(), body


def test_bodies_reported_in_issues(testdata: object) -> None:
    """Real DeepSeek and Z.AI error bodies quoted in GitHub issues: a client error keeps
    the provider's message; the operator's own problems (bad provider key, empty provider
    account — DeepSeek 402, Z.AI 1113) become 502 and never echo the provider's text,
    which can quote part of the gateway's key ("Your api key: ****cd15")."""
    checked = 0
    for status, raw, body in reported_errors():
        error = upstream_error(status, raw, [], "Provider", redactor=NONE)
        code = str(body["error"].get("code"))
        if status in (401, 402, 403) or code == "1113":
            assert error.status == 502
            assert body["error"]["message"] not in error.message
            assert "cd15" not in error.message
        else:
            assert error.status == status
            assert error.message == body["error"]["message"]
        checked += 1
    assert checked == 11  # the complete raw-json bodies in the file


@pytest.mark.parametrize(
    ("status", "client_status", "code"),
    [
        (401, 502, "upstream_auth_failed"),
        (403, 502, "upstream_auth_failed"),
        (402, 502, "upstream_insufficient_balance"),
        (500, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
        (504, 504, "upstream_timeout"),
        (422, 422, "1214"),
        (429, 429, "1302"),
    ],
)
def test_status_mapping(status: int, client_status: int, code: str) -> None:
    body = json.dumps({"error": {"code": code, "message": "m"}}).encode()
    error = upstream_error(status, body, [(b"Retry-After", b"3")], "Z.AI", redactor=NONE)
    assert error.status == client_status
    if client_status == status and status < 500:
        assert error.code == code and error.message == "m"
        assert error.headers.get("Retry-After") == "3"


def test_non_json_and_string_error_bodies() -> None:
    assert (
        upstream_error(400, b"<html>bad</html>", [], "X", redactor=NONE).message
        == "<html>bad</html>"
    )
    assert upstream_error(400, b'{"error": "plain"}', [], "X", redactor=NONE).message == "plain"
    assert (
        upstream_error(400, b"", [], "X", redactor=NONE).message == "X rejected the request (400)"
    )


@pytest.mark.parametrize("status", [400, 500, 503])
def test_a_key_cut_by_the_message_limit_leaks_no_part(status: int) -> None:
    """A non-JSON body is cut to 500 characters for the message; a Z.AI-shaped key (not
    sk-…) straddling the cut must not leave its first part in the message."""
    key = "0123456789abcdef0123456789abcdef.ZyXwVuTsRqPoNm"
    for start in range(480, 500):
        body = ("x" * start + f" key={key} rejected").encode()
        message = upstream_error(status, body, [], "Z.AI", redactor=Redactor.for_key(key)).message
        assert key[:8] not in message, (start, message)


def test_refusals_of_the_clients_own_key_are_its_to_fix(testdata: object) -> None:
    """With the client's own provider key, the same real bodies that are the operator's
    problem (401/402/403, Z.AI 1113) become 403 ``byok_key_rejected`` naming the key by
    fingerprint and the provider's status — still never the provider's text, which can
    quote part of the key; every other answer maps as for the operator's key."""
    refused = 0
    for status, raw, body in reported_errors():
        error = upstream_error(
            status, raw, [], "Provider", redactor=NONE, own_key_fingerprint="0123456789ab"
        )
        if status in (401, 402, 403) or str(body["error"].get("code")) == "1113":
            refused += 1
            assert (error.status, error.code, error.error_type) == (
                403,
                "byok_key_rejected",
                "permission_error",
            )
            assert "0123456789ab" in error.message and f"status {status}" in error.message
            assert body["error"]["message"] not in error.message and "cd15" not in error.message
        else:
            operator = upstream_error(status, raw, [], "Provider", redactor=NONE)
            assert (error.status, error.code, error.message) == (
                operator.status,
                operator.code,
                operator.message,
            )
    assert refused >= 3


@pytest.mark.parametrize(
    ("sent", "passed_on"),
    [
        (b"3", "3"),
        (b" 12 ", "12"),
        (b"1.5", "1.5"),
        (b"Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
        (b"21 Oct 2015 09:28:00 +0200", "Wed, 21 Oct 2015 07:28:00 GMT"),
        # what a careless provider or proxy may put there: the key it was sent
        (b"sk-canary-0123456789abcdef", None),
        (b"Bearer sk-canary-0123456789abcdef", None),
        # a date the parser accepts whatever follows it: written anew, the rest dropped
        (b"Wed, 21 Oct 2015 07:28:00 sk-canary-0123456789", "Wed, 21 Oct 2015 07:28:00 GMT"),
        (b"\xff\xfe", None),
    ],
)
def test_only_a_time_in_retry_after_reaches_the_client(sent: bytes, passed_on: str | None) -> None:
    """``Retry-After`` is the one provider header a client is handed, so only a time
    (RFC 9110 §10.2.3) gets through it, never text the provider chose."""
    for status in (429, 503, 400):
        error = upstream_error(status, b"{}", [(b"Retry-After", sent)], "X", redactor=NONE)
        assert error.headers.get("Retry-After") == passed_on
