"""Redaction of credentials from upstream text before any of it reaches a client.

A provider's error can quote the request's credentials: a proxy in front of it echoes
the ``Authorization`` header, a 400 says "invalid api key sk-proj-…abcd", a 500 dumps
the request it failed on. The gateway's provider key must never reach a client, its
logs or its database, so every piece of upstream text the gateway passes on goes
through a :class:`Redactor` first. Two strengths:

* :meth:`Redactor.text` — for text the gateway shows as an error (messages, codes,
  params, in-band error events): the provider key in any form it may be quoted in
  (as is, URL-encoded, JSON-escaped with or without ``\\/``; not as ``\\uXXXX``
  escapes, which no provider was seen to use) and anything *shaped* like a credential
  (``Bearer …``, ``Basic …``, ``sk-…`` / ``sk_…`` including ``sk-sr-…`` and masked
  ``sk-proj-****abcd`` keys), whoever's it is: the client's own SafeRouter key too.
* :meth:`Redactor.known` — for bytes relayed as a model's answer: only the provider key
  itself. Shapes are left alone there, since a model may rightly write ``sk-…`` or
  ``Bearer …`` in an answer about code.

Pure functions of their input; nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from urllib.parse import quote

import attrs

REDACTED = "[redacted]"
_REDACTED_BYTES = REDACTED.encode()

# A token runs to whitespace, a quote, a backslash, a comma or a semicolon: the JSON or
# header text around it survives, so a redacted JSON error body stays valid JSON.
_WORD = r"[^\s\"'`,;<>\\]+"
_SHAPED = re.compile(
    rf"(?i)\bbearer\s+{_WORD}"  # an Authorization header's value
    # HTTP Basic credentials: base64 with a digit or +/= in it, so "basic tier" stays
    r"|\bbasic\s+(?=[a-z]*[0-9+/=])[a-z0-9+/=]{8,}"
    rf"|\bsk[-_]{_WORD}"  # OpenAI-style keys, SafeRouter's sk-sr-…, masked sk-proj-***ab
)
# Shorter provider keys are not matched as exact strings: every short word of every
# message would be at risk, and such a key is no secret worth the damage.
MIN_KEY_CHARS = 8


@attrs.frozen
class Redactor:
    """Redacts one provider key (and, in error text, every credential-shaped token)."""

    forms: tuple[str, ...] = attrs.field(default=(), repr=False)
    # the same forms as UTF-8, for relayed bytes: encoded once, not once per event
    byte_forms: tuple[bytes, ...] = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda r: tuple(f.encode() for f in r.forms), takes_self=True),
    )

    @classmethod
    def for_key(cls, api_key: str | None) -> Redactor:
        """A redactor for ``api_key`` in each form it may be quoted in (one per key,
        made once: every attempt and stream of a provider shares it)."""
        return _redactor_for(api_key)

    def text(self, text: str) -> str:
        """``text`` with the provider key and every credential-shaped token replaced."""
        return _SHAPED.sub(REDACTED, self.known_text(text))

    def optional(self, text: str | None) -> str | None:
        """:meth:`text` of ``text`` when there is one."""
        return None if text is None else self.text(text)

    def known_text(self, text: str) -> str:
        """``text`` with only the provider key replaced."""
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text

    def known(self, data: bytes) -> bytes:
        """``data`` with only the provider key (UTF-8, in any of its forms) replaced."""
        for form in self.byte_forms:
            if form in data:
                data = data.replace(form, _REDACTED_BYTES)
        return data

    def event(self, data: bytes) -> bytes:
        """An in-band error event's bytes, redacted like :meth:`text`."""
        text = data.decode("utf-8", errors="surrogateescape")
        return self.text(text).encode("utf-8", errors="surrogateescape")


@lru_cache(maxsize=256)  # provider keys are few; bounded for when clients bring their own
def _redactor_for(api_key: str | None) -> Redactor:
    if not api_key or len(api_key) < MIN_KEY_CHARS:
        return Redactor()
    escaped = json.dumps(api_key)[1:-1]
    # JSON may escape "/" as "\/" (PHP does by default)
    forms = {api_key, quote(api_key, safe=""), escaped, escaped.replace("/", "\\/")}
    return Redactor(tuple(sorted(forms, key=len, reverse=True)))
