"""The calling app, as OpenRouter's clients name it: ``HTTP-Referer`` (its URL) and
``X-Title`` (its name; the ``openrouter`` SDK sends it as ``X-OpenRouter-Title``, which
wins when both come). Recorded in each activity entry of the request and grouped by
on the Activity page.

Attribution is advisory: it is never a reason to refuse a request someone pays for. A
value that cannot be kept as the app said it — not UTF-8, holding a control character
(NUL, which PostgreSQL's text cannot hold, newlines that would forge a line of a log
or a table), or longer than :data:`MAX_APP_CHARS` — is dropped whole, not repaired:
a repaired name is a name the app never gave. The request goes on with no app. Pure:
headers in, :class:`App` out; it raises nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import attrs

from .dialect import ApiRequest

MAX_APP_CHARS = 200
TITLE_HEADERS = (b"x-openrouter-title", b"x-title")  # in order of precedence
REFERER_HEADER = b"http-referer"


@attrs.frozen
class App:
    """Who sent a request, by its own account; None where it did not say (or said it
    in a form that cannot be kept)."""

    title: str | None = None
    referer: str | None = None


_NO_APP = App()


def parse_app(headers: Sequence[tuple[bytes, bytes]]) -> App:
    """The app the request's headers (ASGI's: lower-case names) name."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)  # the first of a repeated header
    title = next((found[n] for n in TITLE_HEADERS if n in found), None)
    return App(title=storable(title), referer=storable(found.get(REFERER_HEADER)))


def attributed(request: ApiRequest, headers: Sequence[tuple[bytes, bytes]]) -> ApiRequest:
    """``request`` with the app its headers name (the pipeline's parse step, for every
    API alike: a dialect parses its body, the app is no part of it)."""
    app = parse_app(headers)
    if app == _NO_APP:  # most requests name none: no copy
        return request
    return attrs.evolve(request, app_title=app.title, app_referer=app.referer)


def storable(raw: bytes | None) -> str | None:
    """A header's value as the store may keep it, its outer spaces stripped; None when
    absent, empty, not UTF-8, holding a control character or over the length bound."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > MAX_APP_CHARS:
        return None
    # Cc: C0 and C1 controls (NUL, CR, LF, ESC …); Cf: invisible format characters that
    # reorder or hide text (U+202E, U+200B), so a name cannot pose as another
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        return None
    return text
