"""Anthropic-shaped provider errors (``{"type":"error","error":{"type","message"}}``) read
at the edge: overload fails over, Z.AI's 1113 inside Anthropic's shape stays the
operator's problem, a client error keeps its message and type (pure)."""

from __future__ import annotations

import json

import pytest

from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import (
    UpstreamBadGateway,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from saferouter.gateway.dialects.messages import MESSAGES
from saferouter.gateway.redact import Redactor
from saferouter.gateway.routing import classify
from saferouter.gateway.upstream import upstream_error

from ..recordings import RECORDINGS

NONE = Redactor()
MODEL = load_catalog(DEFAULT_CATALOG_PATH).models["glm-4.7"]


def reported(status: int) -> list[bytes]:
    assert RECORDINGS is not None
    items = json.loads((RECORDINGS / "anthropic/reported_in_issues.json").read_text())["errors"]
    return [item["body"].encode() for item in items if item["status"] == status]


def test_529_overloaded_fails_over_like_a_503(testdata: object) -> None:
    bodies = reported(529)
    assert len(bodies) == 2  # with and without request_id
    for body in bodies:
        error = upstream_error_of(529, body)
        assert isinstance(error, UpstreamUnavailable)
        assert error.message == "Z.AI is unavailable (529): Overloaded"
        assert classify(error, MODEL).failover
        status, _, reply = MESSAGES.error_reply(error)  # and the client hears overload
        assert status == 529
        assert json.loads(reply)["error"]["type"] == "overloaded_error"


def test_500_overloaded_fails_over(testdata: object) -> None:
    (body,) = reported(500)
    error = upstream_error_of(500, body)
    assert isinstance(error, UpstreamBadGateway) and classify(error, MODEL).failover
    assert MESSAGES.error_reply(error)[0] == 500


def test_a_client_error_keeps_anthropic_message_and_type(testdata: object) -> None:
    assert RECORDINGS is not None
    body = (RECORDINGS / "anthropic/pydantic-ai__400_invalid_request_error.json").read_bytes()
    error = upstream_error_of(400, body)
    assert isinstance(error, UpstreamRejected) and not classify(error, MODEL).failover
    assert error.message.startswith("This model does not support effort level 'xhigh'.")
    assert error.error_type == "invalid_request_error"
    not_found = (RECORDINGS / "anthropic/pydantic-ai__404_not_found_error.json").read_bytes()
    status, _, reply = MESSAGES.error_reply(upstream_error_of(404, not_found))
    assert status == 404
    assert json.loads(reply)["error"] == {
        "type": "not_found_error",
        "message": "model: claude-does-not-exist",
    }


def test_a_429_rate_limit_error_waits(testdata: object) -> None:
    (body,) = reported(429)
    error = upstream_error_of(429, body, retry_after=b"9")
    assert isinstance(error, UpstreamRejected) and error.status == 429
    assert error.headers == {"Retry-After": "9"}
    assert MESSAGES.error_reply(error)[1]["Retry-After"] == "9"
    assert not isinstance(error, UpstreamRateLimited)


@pytest.mark.parametrize("own", [None, "fp_12ab"])
def test_z_ai_1113_in_anthropic_shape_is_no_balance(own: str | None) -> None:
    """Z.AI's Anthropic route wraps its business code (../shared/reference/providers.md):
    still "no money upstream", never passed on as the client's own rate limit."""
    body = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "code": "1113",
                "message": "[1113][Insufficient balance or no resource package.][req_1]",
            },
            "request_id": "req_1",
        }
    ).encode()
    error = upstream_error(429, body, [], "Z.AI", redactor=NONE, own_key_fingerprint=own)
    if own is None:
        assert error.code == "upstream_insufficient_balance" and error.status == 502
    else:
        assert error.code == "byok_key_rejected" and error.status == 403
    assert "Insufficient balance or no resource" not in error.message


def upstream_error_of(status: int, body: bytes, retry_after: bytes | None = None) -> UpstreamError:
    headers = [(b"retry-after", retry_after)] if retry_after else []
    return upstream_error(status, body, headers, "Z.AI", redactor=NONE)
