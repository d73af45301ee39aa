"""The web pages (``saferouter/web/``, package data): plain files, no build step.

They are found through :mod:`importlib.resources`, so a wheel install serves the same
files, from the same place in the measured package, as a checkout does."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from importlib import resources

from quart import Blueprint, Response

from ..errors import NotFound

blueprint = Blueprint("web", __name__)

WEB_DIR = resources.files("saferouter").joinpath("web")
PAGES = {
    "/": "index.html",
    "/models": "models.html",
    "/chat": "chat.html",
    "/compare": "compare.html",
    "/activity": "activity.html",
    "/keys": "keys.html",
    "/credits": "credits.html",
}
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The pages load nothing from elsewhere: a CSP says so to the browser.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


# What a file under web/ may be called. The name comes from the URL, so it is checked
# before it reaches the file system, where a NUL byte or a 5000-byte name is a ValueError
# or an OSError (a 500), and ".." would climb out of web/.
_FILE_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,64}/){0,3}[A-Za-z0-9_-]{1,64}\.[a-z]{1,8}")


def _file(name: str) -> Response:
    if _FILE_NAME.fullmatch(name) is None:
        raise NotFound("No such page or asset.", code="unknown_url")
    # the pattern admits no "." segment, so the name cannot climb out of web/
    path = WEB_DIR.joinpath(*name.split("/"))
    if not path.is_file():
        raise NotFound(f"No page {name}.", code="unknown_url")
    suffix = "." + name.rsplit(".", 1)[1]
    response = Response(path.read_bytes(), content_type=TYPES.get(suffix, "text/plain"))
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _page_view(name: str) -> Callable[[], Awaitable[Response]]:
    async def view() -> Response:
        return _file(name)

    view.__name__ = f"page_{name.removesuffix('.html')}"
    return view


for _path, _name in PAGES.items():
    blueprint.add_url_rule(_path, view_func=_page_view(_name), methods=["GET"])


@blueprint.get("/verifier")
async def verifier() -> Response:
    """The verifier is one self-contained file (it must also work opened from disk), so
    its inline script and style are allowed by hash, and it may call any gateway. Only
    this origin may frame it: the Keys page runs its checks in a hidden frame rather than
    keep a second copy of them."""
    response = _file("verifier.html")
    html = WEB_DIR.joinpath("verifier.html").read_text()
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src {_inline_hash(html, 'script')}; "
        f"style-src {_inline_hash(html, 'style')}; connect-src *; img-src data:; "
        "base-uri 'none'; frame-ancestors 'self'"
    )
    return response


def _inline_hash(html: str, tag: str) -> str:
    start = html.index(">", html.index(f"<{tag}")) + 1
    body = html[start : html.index(f"</{tag}>", start)]
    return f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"


@blueprint.get("/assets/<path:name>")
async def asset(name: str) -> Response:
    return _file(f"assets/{name}")


@blueprint.get("/vendor/<path:name>")
async def vendored(name: str) -> Response:
    """Third-party code the pages load (``web/vendor/README.md`` says what, from where,
    and its SHA-256), served from this origin: a CDN would be code outside the measurement."""
    return _file(f"vendor/{name}")
