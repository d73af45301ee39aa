"""Which URL paths the gateway answers, and how: OpenRouter's ``/api/v1`` prefix, the
endpoints of OpenAI's and Anthropic's APIs it does not serve, and any other URL.

Clients written for OpenRouter change only the host: their base URL ends in
``/api/v1``. :class:`ApiPrefix` serves ``/api/v1/<rest>`` as ``/v1/<rest>`` by
rewriting the ASGI scope (``path`` and ``raw_path``) before anything routes it, so the
API endpoints in front of Quart and Quart's routes see one path and cannot disagree on
it — except :data:`OPENROUTER_OWN`, OpenRouter's own account endpoints, whose shapes are
not SafeRouter's ``/v1`` ones (``/v1/credits`` is not ``/api/v1/credits``): Quart serves
those under ``/api/v1`` (:mod:`.routes.openrouter`).

A URL no route has is a 404 (:func:`not_found`). For an endpoint of a known API that
SafeRouter does not serve (embeddings, audio, files …) it says so, with the code
``unsupported_endpoint``: a client author learns it is no typo. No 404 links to
another service's documentation: this is not that service.
"""

from __future__ import annotations

from urllib.parse import quote

import attrs
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from .errors import NotFound

OPENROUTER_PREFIX = "/api/v1/"
# served under /api/v1 in OpenRouter's own shapes (auth/key: its older name for key)
OPENROUTER_OWN = frozenset({"key", "auth/key", "credits", "generation"})
# endpoints of OpenAI's and Anthropic's APIs that SafeRouter does not serve: each path
# itself and everything under it
UNSUPPORTED = (
    "/v1/embeddings",
    "/v1/completions",
    "/v1/audio",
    "/v1/images",
    "/v1/moderations",
    "/v1/files",
    "/v1/batches",
    "/v1/fine_tuning",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/realtime",
    "/v1/uploads",
    "/v1/messages/batches",
)
# served endpoints whose sub-resources are not: a stored response or completion read,
# listed or deleted by id (``GET /v1/responses/{id}``, ``…/input_items``) — those live in
# the operator's provider account, where one tenant could reach another's
BELOW_SERVED = ("/v1/responses", "/v1/chat/completions", "/v1/messages")
SERVED = "chat completions, responses and messages"


def served_path(path: str) -> str | None:
    """The path ``path`` is served as, when it is under OpenRouter's prefix and not one
    of its own endpoints (leading slashes collapsed, as routing does); None otherwise."""
    bare = "/" + path.lstrip("/")
    if not bare.startswith(OPENROUTER_PREFIX):
        return None
    rest = bare.removeprefix(OPENROUTER_PREFIX)
    return None if rest in OPENROUTER_OWN else "/v1/" + rest


def not_found(method: str, path: str) -> NotFound:
    """The 404 for a URL no route has: ``unsupported_endpoint`` for an endpoint of a
    known API that SafeRouter does not serve, ``unknown_url`` for anything else."""
    bare = "/" + path.lstrip("/")
    below = any(bare.startswith(served + "/") for served in BELOW_SERVED)
    if below or any(bare == u or bare.startswith(u + "/") for u in UNSUPPORTED):
        return NotFound(
            f"SafeRouter does not serve {bare} (it serves {SERVED}).",
            code="unsupported_endpoint",
        )
    return NotFound(f"Unknown request URL: {method} {path}.", code="unknown_url")


@attrs.frozen
class ApiPrefix:
    """ASGI middleware: ``/api/v1/<rest>`` goes on to ``app`` as ``/v1/<rest>``
    (:func:`served_path`); every other request unchanged."""

    app: ASGIFramework

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            path = served_path(scope["path"])
            if path is not None:
                scope = {**scope, "path": path, "raw_path": _raw(scope["raw_path"], path)}
        await self.app(scope, receive, send)


def _raw(raw: bytes | None, path: str) -> bytes:
    """``raw_path`` for the rewritten ``path``: the client's bytes after the prefix, kept
    as sent (percent-escapes included), when they begin with it; else ``path`` quoted."""
    bare = b"/" + (raw or b"").lstrip(b"/")
    prefix = OPENROUTER_PREFIX.encode()
    if bare.startswith(prefix):
        return b"/v1/" + bare.removeprefix(prefix)
    return quote(path).encode()
