"""Cross-origin calls to the API from browser apps (``--cors-origin``), off by default.

A web app on another origin (``https://app.example.com``) calling the gateway with
``fetch`` is held by the browser to CORS (the Fetch standard, §3.2): a request with an
``Authorization`` header or a JSON body is first *preflighted* (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``), and the answer's headers are readable
by the app only when the response names its origin in ``Access-Control-Allow-Origin``
and the non-safelisted headers in ``Access-Control-Expose-Headers``.

:class:`CorsPolicy` is the pure part — which requests it answers for and with which
headers — and :class:`CorsLayer` the ASGI shell, outermost (outside ``ClientGuard``), so
it sees every header of the final response, ``Server-Timing`` included, and lists in
``Access-Control-Expose-Headers`` exactly the ones that response carries of those an API
client reads (request id, ``X-SafeRouter-*``, ``Server-Timing``, ``X-RateLimit-*``,
``Retry-After``). A listed origin is echoed, never ``*``, and no credentials (cookies)
are allowed: API keys travel in ``Authorization``, which the app sets itself.

Only the API's paths (``/v1/…`` and OpenRouter's ``/api/v1/…``) are covered: the pages
are same-origin, and the attestation routes answer every origin themselves (a verifier
may be hosted anywhere). Any other origin gets no CORS header at all (its preflight goes
on to the app, which refuses ``OPTIONS``), so the browser keeps the app from reading.
A preflight answered here never reaches the app: it is no request to count or trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from .errors import ConfigError

if TYPE_CHECKING:  # config.py imports parse_origin: no server package at import time
    from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

Headers = list[tuple[bytes, bytes]]

API_PREFIXES = ("/v1/", "/api/v1/")
METHODS = b"GET, POST, PATCH, DELETE"
# browsers cache a preflight this long (Chromium caps it at 2 hours)
PREFLIGHT_MAX_AGE_S = 600
# the response headers an API client reads (the OpenAI SDK: x-request-id, retry-after)
_EXPOSABLE = re.compile(
    rb"x-request-id|x-saferouter-[a-z0-9-]+|server-timing|x-ratelimit-[a-z0-9-]+|retry-after"
)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 §5.1)
_VARY = (b"vary", b"Origin")


@attrs.frozen
class CorsPolicy:
    """Which origins may call the API from a browser (serialized origins, as a browser
    sends them: ``scheme://host[:port]``, lower-case, no default port)."""

    origins: frozenset[str]

    def covers(self, path: str) -> bool:
        """Whether ``path`` is the API's (leading slashes collapsed, as routing does)."""
        return ("/" + path.lstrip("/")).startswith(API_PREFIXES)

    def allowed(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        """The request's ``Origin`` when it is a listed one, else None."""
        origin = _header(headers, b"origin")
        if origin is None or origin.decode("latin-1") not in self.origins:
            return None
        return origin

    def preflight(self, origin: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        """The headers of a 204 answering an allowed origin's preflight. The requested
        headers are allowed as asked (each a field name; otherwise none are, and the
        browser refuses): the SDKs send their own (``X-Stainless-*``, ``anthropic-*``)."""
        answer = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", METHODS),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        requested = _header(headers, b"access-control-request-headers")
        names = [n.strip().lower() for n in (requested or b"").split(b",") if n.strip()]
        if names and all(_TOKEN.fullmatch(n) for n in names):
            answer.append((b"access-control-allow-headers", b", ".join(names)))
        return answer

    def response(self, origin: bytes | None, headers: Headers) -> Headers:
        """An API response's headers with CORS's: ``Vary: Origin`` always (the answer
        depends on it), and for an allowed ``origin`` that origin and the exposable
        headers this response carries."""
        if origin is None:
            return [*headers, _VARY]
        exposed = dict.fromkeys(n for n, _ in headers if _EXPOSABLE.fullmatch(n.lower()))
        cors = [(b"access-control-allow-origin", origin), _VARY]
        if exposed:
            cors.append((b"access-control-expose-headers", b", ".join(exposed)))
        return [*headers, *cors]


def is_preflight(method: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """An ``OPTIONS`` request asking ``Access-Control-Request-Method``: a preflight."""
    return method == "OPTIONS" and _header(headers, b"access-control-request-method") is not None


@attrs.frozen
class CorsLayer:
    """ASGI middleware applying a :class:`CorsPolicy` to the API's paths."""

    app: ASGIFramework
    policy: CorsPolicy

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or not self.policy.covers(scope["path"]):
            await self.app(scope, receive, send)
            return
        origin = self.policy.allowed(scope["headers"])
        if origin is not None and is_preflight(scope["method"], scope["headers"]):
            headers = self.policy.preflight(origin, scope["headers"])
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        async def with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message = {**message, "headers": self.policy.response(origin, headers)}
            await send(message)

        await self.app(scope, receive, with_cors)


def parse_origin(text: str) -> str:
    """``scheme://host[:port]`` of an http(s) web app, serialized as browsers send it in
    ``Origin`` (RFC 6454 §6.1: lower-case, no default port); else :class:`ConfigError`."""
    problem = ConfigError(
        f"--cors-origin {text!r} is not an origin: give scheme://host[:port], like "
        "https://app.example.com (no path, no *)"
    )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise problem from None
    scheme = parts.scheme.lower()
    if (
        scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or text.endswith(("?", "#"))
    ):
        raise problem
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI gives names)."""
    return next((value for key, value in headers if key.lower() == name), None)
