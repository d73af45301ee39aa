"""The path rules alone: which paths the ``/api/v1`` prefix serves as ``/v1``, what the
app behind :class:`ApiPrefix` is handed (``path`` and ``raw_path`` agree), and which
404 a path gets."""

from __future__ import annotations

from typing import Any

import pytest

from saferouter.paths import ApiPrefix, not_found, served_path


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("/api/v1/chat/completions", "/v1/chat/completions"),
        ("//api/v1/models", "/v1/models"),
        ("/api/v1/messages", "/v1/messages"),
        ("/api/v1/credits/topup", "/v1/credits/topup"),
        ("/api/v1/key", None),  # OpenRouter's own shapes
        ("/api/v1/auth/key", None),
        ("/api/v1/credits", None),
        ("/api/v1/generation", None),
        ("/v1/models", None),
        ("/api/v2/models", None),
        ("/api/v1", None),
    ],
)
def test_served_path(path: str, served: str | None) -> None:
    assert served_path(path) == served


async def _seen(path: str, raw_path: bytes | None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "path": path, "raw_path": raw_path, "query_string": b"a=1"}
    await ApiPrefix(app)(scope, None, None)  # type: ignore[arg-type]
    return seen


async def test_the_app_behind_sees_one_path_raw_and_decoded() -> None:
    seen = await _seen("/api/v1/models/a b", b"/api/v1/models/a%20b")
    assert (seen["path"], seen["raw_path"], seen["query_string"]) == (
        "/v1/models/a b",
        b"/v1/models/a%20b",
        b"a=1",
    )
    # a raw path that hides the prefix behind escapes: made from the decoded one
    seen = await _seen("/api/v1/models", b"/api%2Fv1/models")
    assert (seen["path"], seen["raw_path"]) == ("/v1/models", b"/v1/models")
    untouched = await _seen("/v1/models", b"/v1/models")
    assert (untouched["path"], untouched["raw_path"]) == ("/v1/models", b"/v1/models")


def test_the_404_of_an_unsupported_endpoint_and_of_any_other_url() -> None:
    error = not_found("POST", "/v1/audio/speech")
    assert (error.status, error.code) == (404, "unsupported_endpoint")
    assert str(error) == (
        "SafeRouter does not serve /v1/audio/speech "
        "(it serves chat completions, responses and messages)."
    )
    stored = not_found("GET", "/v1/responses/resp_1/input_items")
    assert stored.code == "unsupported_endpoint" and "/v1/responses/resp_1" in str(stored)
    assert not_found("GET", "/v1/responsesx").code == "unknown_url"
    other = not_found("GET", "/v1/audiobooks")
    assert other.code == "unknown_url" and str(other) == "Unknown request URL: GET /v1/audiobooks."
