"""The body an attempt sends upstream: the client's bytes, spliced (pure).

What the upstream reads is the client's body with a few changes: ``model`` is the served
model's upstream name, the OpenRouter fields in :data:`STRIPPED_FIELDS` are gone (the
gateway's business, not the provider's: no provider gets a field it did not ask for), a
dialect may replace or add members (chat asks a stream for its usage), and then — for
chat completions only — the model's ``body_defaults`` are added where the client did not
set them. They are Chat Completions fields (DeepSeek's ``thinking: {"type": …}``), which
another API may read otherwise or refuse (Anthropic's ``thinking`` enabled needs
``budget_tokens``; Responses has no ``thinking``): a body asks for them by
``model_defaults=True``, which only the chat dialect passes.

Those changes are spliced into the client's bytes, which stay exactly as sent elsewhere
(key order, escapes, number forms): an attempt costs one join, not one encode of the
whole prompt. A body the reader would not splice (see
:func:`~saferouter.json_object.parse_json_object`: a duplicate key, an escaped key, not
UTF-8) is encoded from its parsed value instead, which is what the gateway read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ..catalog import Model
from ..json_object import JsonObject

# OpenRouter's request fields, the gateway's own business: removed from every API's
# upstream body (OpenAI's and Anthropic's APIs have no top-level field of these names).
STRIPPED_FIELDS = ("models", "provider", "transforms", "route", "usage")
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class UpstreamBody:
    """The upstream body of one request; built once, asked per attempt."""

    payload: dict[str, Any] = attrs.field(repr=False)  # what the upstream reads, but model
    # the client's bytes before ``model``'s value, after it up to the end of the last
    # member (where defaults go), and the rest; None: encode ``payload``
    pieces: tuple[bytes, bytes, bytes] | None = attrs.field(repr=False)
    model_defaults: bool = False  # add the model's body_defaults (chat completions only)

    @classmethod
    def of(
        cls,
        payload: Mapping[str, Any],
        source: JsonObject | None,
        *,
        replace: Mapping[str, Any] = _NOTHING,
        model_defaults: bool = False,
    ) -> UpstreamBody:
        """The upstream body of a request whose parsed body is ``payload`` (``source``:
        its bytes and spans, None for none), with the members in ``replace`` set and,
        when ``model_defaults``, each attempt's model's ``body_defaults`` added."""
        kept = {k: v for k, v in payload.items() if k not in STRIPPED_FIELDS}
        kept.update(replace)
        members = source.members if source is not None else None
        if source is None or not members:
            return cls(kept, None, model_defaults)
        index = {m.key: i for i, m in enumerate(members)}
        stripped = [i for i, m in enumerate(members) if m.key in STRIPPED_FIELDS]
        if len(stripped) == len(members):  # nothing left to splice around
            return cls(kept, None, model_defaults)
        end = members[-1].end
        # (start, end, replacement) in the client's bytes; None marks where a per-attempt
        # piece goes (the model's name, then the defaults)
        edits: list[tuple[int, int, bytes | None]] = []
        first_kept = next(i for i in range(len(members)) if i not in stripped)
        if first_kept:  # a leading run: cut up to the first member kept, its comma too
            edits.append((members[0].start, members[first_kept].start, b""))
        for i in stripped:
            if i > first_kept:  # with the comma before it
                edits.append((members[i - 1].end, members[i].end, b""))
        for name, value in replace.items():
            if name in index:  # replaced where it is (an object or null alike)
                sent = members[index[name]]
                edits.append((sent.value_start, sent.end, _encode(value)))
            else:
                edits.append((end, end, b"," + _encode(name) + b":" + _encode(value)))
        if "model" in index:
            model = members[index["model"]]
            edits.append((model.value_start, model.end, None))
        else:  # OpenRouter's ``models`` without ``model``: the attempt names its model
            edits.append((end, end, b',"model":'))
            edits.append((end, end, None))
        edits.append((end, end, None))
        return cls(kept, _splice(source.body, edits), model_defaults)

    def for_model(self, model: Model) -> bytes:
        """The bytes an attempt at ``model`` sends."""
        added = model.body_defaults if self.model_defaults else _NOTHING
        if self.pieces is None:
            payload = {**self.payload, "model": model.upstream}
            for name, value in added.items():
                payload.setdefault(name, value)
            return _encode(payload)
        head, middle, tail = self.pieces
        defaults = b"".join(
            b"," + _encode(name) + b":" + _encode(value)
            for name, value in added.items()
            if name not in self.payload
        )
        return b"".join((head, _encode(model.upstream), middle, defaults, tail))


def _splice(body: bytes, edits: list[tuple[int, int, bytes | None]]) -> tuple[bytes, bytes, bytes]:
    """``body`` with the edits made (none overlapping; at one offset, in list order), cut
    into three pieces where the two ``None`` edits are."""
    pieces, current, position = [], [], 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):  # stable
        current.append(body[position:start])
        if replacement is None:
            pieces.append(b"".join(current))
            current = []
        else:
            current.append(replacement)
        position = end
    current.append(body[position:])
    pieces.append(b"".join(current))
    head, middle, tail = pieces
    return head, middle, tail


# one encoder: json.dumps with arguments builds a new one per call (µs per small value)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON (the encoding spliced pieces use)."""
    return _ENCODER.encode(value).encode()


_encode = encode_json
