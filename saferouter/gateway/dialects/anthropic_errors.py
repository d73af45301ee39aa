"""SafeRouter's errors as Anthropic's clients expect them (pure).

Anthropic's error body is ``{"type": "error", "error": {"type", "message"}}`` with its
own statuses and types (docs.anthropic.com/en/api/errors): an Anthropic SDK raises the
exception class of the status (``OverloadedError`` for 529 …), retries 408/409/429/5xx
and shows ``error.message``. Claude Code reads the same. So every error of a
``/v1/messages`` request — ours or a provider's, already mapped to an
:class:`~saferouter.errors.ApiError` at the edge (``upstream.upstream_error``) — is
rendered here instead of in OpenAI's shape. The gateway's own ``code`` goes along inside
``error`` (as Z.AI's Anthropic endpoint sends its business code there): a client that
knows SafeRouter can tell ``insufficient_quota`` from ``unsupported_content``; one that
does not ignores it.

Where our statuses and Anthropic's differ, the status changes with the type: a provider
that is down (our 503) is Anthropic's 529 ``overloaded_error`` — what Claude Code and
the SDKs retry, with backoff, as overload; a failed provider (our 502) is a 500
``api_error`` (Anthropic has no 502). ``Retry-After`` and every other header stay.
"""

from __future__ import annotations

from ...errors import ApiError
from ..upstream_body import encode_json

# Our status → (the status the client gets, Anthropic's error type).
_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (408, "timeout_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
JSON_CONTENT_TYPE = {"Content-Type": "application/json"}


def anthropic_status(status: int) -> tuple[int, str]:
    """The status and Anthropic error type for one of our error statuses (any other 4xx
    keeps its status as an ``invalid_request_error``, any other 5xx is an ``api_error``)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return (status, "invalid_request_error") if status < 500 else (500, "api_error")


def anthropic_error_object(error: ApiError) -> tuple[int, dict[str, object]]:
    """The status and the Anthropic error object (``{"type": "error", "error": …}``)."""
    status, kind = anthropic_status(error.status)
    inner: dict[str, object] = {"type": kind, "message": error.message}
    if error.code is not None:
        inner["code"] = error.code
    return status, {"type": "error", "error": inner}


def error_reply(error: ApiError) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of ``error`` for an Anthropic client."""
    status, body = anthropic_error_object(error)
    return status, {**error.headers, **JSON_CONTENT_TYPE}, encode_json(body)


def stream_error(error: ApiError) -> bytes:
    """The in-band ``error`` event that ends a broken stream, as Anthropic sends one."""
    return b"event: error\ndata: " + encode_json(anthropic_error_object(error)[1]) + b"\n\n"
