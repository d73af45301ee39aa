"""The upstream body spliced into the client's bytes: the same JSON as encoding the parsed
value would send, and the client's bytes everywhere the gateway changes nothing."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.catalog import DEFAULT_CATALOG_PATH, Api, Model, load_catalog
from saferouter.gateway.dialect import ApiRequest
from saferouter.gateway.dialects import DIALECTS
from saferouter.gateway.dialects.chat import CHAT, parse_chat_request
from saferouter.gateway.upstream_body import STRIPPED_FIELDS

from ..recordings import RECORDINGS, recording_params

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)
PLAIN = attrs.evolve(CATALOG.models["glm-4.7"], upstream="up/plain", body_defaults={})
DEFAULTS = attrs.evolve(
    CATALOG.models["deepseek-chat"],
    upstream="up/defaults",
    body_defaults={"thinking": {"type": "disabled"}, "temperature": 0.5, "ünï": "✓"},
)


def compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encoded_as_before(chat: ApiRequest, model: Model) -> bytes:
    """What the gateway sent before splicing (routes/chat.py's ``_asking_for_usage`` and
    ``encode_upstream_body``, kept here as the reference): the parsed value, changed,
    encoded whole."""
    payload = {k: v for k, v in chat.payload.items() if k not in STRIPPED_FIELDS}
    if chat.stream and not chat.include_usage:
        options = payload.get("stream_options") or {}
        payload["stream_options"] = {**options, "include_usage": True}
    payload["model"] = model.upstream
    for name, value in model.body_defaults.items():
        payload.setdefault(name, value)
    return compact(payload)


def spliced_by_hand(body: bytes, chat: ApiRequest, model: Model) -> bytes:
    """The client's bytes with only the changed spans changed, applied from the end
    backwards so that no offset moves: an independent statement of what is expected."""
    assert chat.source is not None and chat.source.members is not None
    members = chat.source.members
    keys = [m.key for m in members]
    upstream = json.loads(encoded_as_before(chat, model))
    out = body
    added = b""
    if "stream_options" not in keys and "stream_options" in upstream:
        added += b',"stream_options":' + compact(upstream["stream_options"])
    sent_keys = {*keys, "stream_options"} - set(STRIPPED_FIELDS)
    for name in model.body_defaults:
        if name not in sent_keys:
            added += b"," + compact({name: upstream[name]})[1:-1]
    last = members[-1].end
    out = out[:last] + added + out[last:]
    for i in reversed(range(len(members))):
        m = members[i]
        if m.key in STRIPPED_FIELDS:  # with the comma before it, or after it when first
            kept_before = any(k not in STRIPPED_FIELDS for k in keys[:i])
            cut = (members[i - 1].end, m.end) if kept_before else (m.start, members[i + 1].start)
            out = out[: cut[0]] + out[cut[1] :]
        elif m.key == "stream_options" and upstream["stream_options"] != chat.payload[m.key]:
            new = compact(upstream["stream_options"])
            out = out[: m.value_start] + new + out[m.end :]
        elif m.key == "model":
            out = out[: m.value_start] + json.dumps(model.upstream).encode() + out[m.end :]
    return out


def check(body: bytes, model: Model) -> bytes:
    """The upstream body of ``body`` for ``model``: the same JSON, key order included, as
    encoding it whole; when spliced, exactly the client's bytes but for the changes."""
    chat = parse_chat_request(body)
    sent = CHAT.upstream_body(chat).for_model(model)
    expected = encoded_as_before(chat, model)
    assert json.dumps(json.loads(sent)) == json.dumps(json.loads(expected))
    if chat.source is not None and chat.source.members is not None:
        assert sent == spliced_by_hand(body, chat, model)
    return sent


# -- hand-written cases, bytes exact

MESSAGES = b'"messages": [{"role": "user", "content": "hi \\u00e9 1.0e2"}]'


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        (  # models first: it goes with the comma after it
            b'{"models": ["a", "b"], "model": "x", ' + MESSAGES + b"}",
            b'{"model": "up/plain", ' + MESSAGES + b"}",
        ),
        (  # in the middle: with the comma before it
            b'{"model": "x",\n "models": ["a"],\n ' + MESSAGES + b"}",
            b'{"model": "up/plain",\n ' + MESSAGES + b"}",
        ),
        (  # last
            b'{"model" : "x", ' + MESSAGES + b' , "models" : ["a"] }',
            b'{"model" : "up/plain", ' + MESSAGES + b" }",
        ),
        (  # every OpenRouter field, leading, in the middle and last
            b'{"provider":{"sort":"price"}, "usage":{"include":true},"model":"x","route":"f",'
            + MESSAGES
            + b',"transforms":[],"models":["a"]}',
            b'{"model":"up/plain",' + MESSAGES + b"}",
        ),
        (  # a stream without stream_options: asked for usage, added at the end
            b'{"stream":true,"model":"x",' + MESSAGES + b"}",
            b'{"stream":true,"model":"up/plain",'
            + MESSAGES
            + b',"stream_options":{"include_usage":true}}',
        ),
        (  # with other options, include_usage false: set, the others kept
            b'{"model":"x","stream_options":{"x-opt":[1],"include_usage":false},'
            + MESSAGES
            + b',"stream":true}',
            b'{"model":"up/plain","stream_options":{"x-opt":[1],"include_usage":true},'
            + MESSAGES
            + b',"stream":true}',
        ),
        (  # stream_options null in a stream: replaced
            b'{"model":"x","stream":true,"stream_options":null,' + MESSAGES + b"}",
            b'{"model":"up/plain","stream":true,"stream_options":{"include_usage":true},'
            + MESSAGES
            + b"}",
        ),
        (  # usage already asked for: the client's bytes, spacing and all
            b'{"model":"x","stream":true,"stream_options":{ "include_usage" : true },'
            + MESSAGES
            + b"}",
            b'{"model":"up/plain","stream":true,"stream_options":{ "include_usage" : true },'
            + MESSAGES
            + b"}",
        ),
        (  # not a stream: stream_options null stays as sent
            b'{"model":"x","stream":false,"stream_options":null,' + MESSAGES + b"}",
            b'{"model":"up/plain","stream":false,"stream_options":null,' + MESSAGES + b"}",
        ),
    ],
)
def test_the_changes_are_spliced_into_the_client_bytes(body: bytes, sent: bytes) -> None:
    assert check(body, PLAIN) == sent


def test_defaults_go_at_the_end_only_where_the_client_set_none() -> None:
    body = b'{"model":"x",' + MESSAGES + b',"temperature":1,"models":["y"]}'
    assert check(body, DEFAULTS) == (
        b'{"model":"up/defaults",'
        + MESSAGES
        + b',"temperature":1,"thinking":{"type":"disabled"},"\xc3\xbcn\xc3\xaf":"\xe2\x9c\x93"}'
    )


# a body of each API, as its clients send it; spliced, and read back-to-front after a
# duplicate key (encoded from the value read)
API_BODIES = {
    Api.CHAT: b'{"model":"x",' + MESSAGES + b"}",
    Api.RESPONSES: b'{"model":"x","input":"hi"}',
    Api.MESSAGES: b'{"model":"x","max_tokens":5,' + MESSAGES + b"}",
}


@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=[d.api for d in DIALECTS.values()])
@pytest.mark.parametrize("spliced", [True, False], ids=["spliced", "encoded"])
def test_body_defaults_are_added_to_chat_completions_only(dialect: Any, spliced: bool) -> None:
    """``body_defaults`` are Chat Completions fields (DeepSeek's ``thinking: {type}``):
    a Responses or Messages body goes up without them (Anthropic's ``thinking`` enabled
    needs ``budget_tokens``; Responses has none)."""
    body = API_BODIES[dialect.api]
    if not spliced:  # a duplicate key: not spliced, encoded from what the gateway read
        body = body[:-1] + b',"model":"x"}'
    request = dialect.parse(body, [])
    assert request.source is not None and (request.source.members is not None) == spliced
    sent = json.loads(dialect.upstream_body(request).for_model(DEFAULTS))
    added = {name: sent.get(name) for name in DEFAULTS.body_defaults}
    if dialect.api is Api.CHAT:
        assert added == DEFAULTS.body_defaults
    else:
        assert added == {name: None for name in DEFAULTS.body_defaults}
        assert sent == {**json.loads(body), "model": "up/defaults"}


def test_each_attempt_gets_its_own_model_from_one_upstream_body() -> None:
    body = CHAT.upstream_body(parse_chat_request(b'{"model":"x",' + MESSAGES + b"}"))
    assert body.for_model(PLAIN).startswith(b'{"model":"up/plain",')
    assert body.for_model(DEFAULTS).startswith(b'{"model":"up/defaults",')
    assert body.for_model(PLAIN).startswith(b'{"model":"up/plain",')


# -- bodies that are not spliced: encoded from the value the gateway read


@pytest.mark.parametrize(
    "body",
    [
        # duplicate keys: Python keeps the last, another parser may keep the first
        b'{"model":"x","stream":false,' + MESSAGES + b',"stream":true}',
        b'{"model":"a","model":"x",' + MESSAGES + b"}",
        b'{"model":"x","stream":true,"stream_options":{"include_usage":false,"include_usage":true},'
        + MESSAGES
        + b"}",
        # in a content part: the gateway read text, a first-key reader would see an image
        b'{"model":"x","messages":[{"role":"user","content":[{"type":"image_url",'
        b'"image_url":{"url":"u"},"type":"text","text":"t"}]}]}',
        b'{"mod\\u0065l":"x",' + MESSAGES + b',"models":["y"]}',  # an escaped key
        b'\xef\xbb\xbf{"model":"x",' + MESSAGES + b"}",  # a UTF-8 byte-order mark
        '{"model":"x",'.encode("utf-16") + MESSAGES.decode().encode("utf-16")[2:] + b"}\x00",
    ],
    ids=["top", "model-twice", "nested-options", "nested-content", "escaped", "bom", "utf16"],
)
def test_odd_bodies_are_encoded_from_what_the_gateway_read(body: bytes) -> None:
    chat = parse_chat_request(body)
    assert chat.source is not None and chat.source.members is None
    sent = check(body, DEFAULTS)
    assert sent == encoded_as_before(chat, DEFAULTS)  # one reading for every parser
    assert sent.count(b'"model"') == 1 and sent.count(b'"type"') <= 2


# -- properties over generated bodies

SPACE = st.sampled_from(["", " ", "\n", "\t", "  \r\n  "])
NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,12})(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?\Z")
RESERVED = {"model", "messages", "stream", "stream_options", "n", *STRIPPED_FIELDS}
RESERVED |= {"max_tokens", "max_completion_tokens", "modalities", "audio"}


TEXT = st.text(max_size=12)


@st.composite
def string_text(draw: st.DrawFn, text: st.SearchStrategy[str] = TEXT) -> str:
    """A JSON string as a client may write it: raw UTF-8 or \\u escapes, ``\\/`` or not."""
    written = json.dumps(draw(text), ensure_ascii=draw(st.booleans()))
    return written.replace("/", "\\/") if draw(st.booleans()) else written


def spaced(draw: st.DrawFn, parts: list[str], open_: str, close: str) -> str:
    inner = ",".join(draw(SPACE) + p + draw(SPACE) for p in parts)
    return open_ + (inner or draw(SPACE)) + close


@st.composite
def container(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    if draw(st.booleans()):
        return spaced(draw, draw(st.lists(inner, max_size=3)), "[", "]")
    keys = draw(st.lists(st.text(max_size=5), unique=True, max_size=3))
    parts = [json.dumps(k, ensure_ascii=False) + draw(SPACE) + ":" + draw(inner) for k in keys]
    return spaced(draw, parts, "{", "}")


VALUE = st.recursive(
    st.sampled_from(["null", "true", "false"]) | NUMBER | string_text(),
    container,
    max_leaves=8,
)
MODEL_ID = st.sampled_from(["glm-4.7", "deepseek-chat", "fake/echo", "a"])


@st.composite
def chat_body(draw: st.DrawFn) -> bytes:
    """A chat body whose decisions parse: members in any order, any spacing, escapes,
    unicode and number forms, OpenRouter's fields anywhere, stream_options in every form."""
    members = {"model": string_text(MODEL_ID), "messages": st.just("")}
    content = draw(string_text())
    members["messages"] = st.just(
        spaced(draw, ['{"role":"user","content":' + draw(SPACE) + content + "}"], "[", "]")
    )
    stream = draw(st.sampled_from([None, "true", "false"]))
    if stream is not None:
        members["stream"] = st.just(stream)
    if stream == "true":
        usage = draw(st.sampled_from([None, "true", "false"]))
        other = draw(st.lists(VALUE, max_size=2))
        parts = [f'"other{i}":{v}' for i, v in enumerate(other)]
        if usage is not None:
            parts.insert(draw(st.integers(0, len(parts))), f'"include_usage":{usage}')
        form = draw(st.sampled_from(["absent", "null", "object"]))
        if form != "absent":
            members["stream_options"] = st.just(
                "null" if form == "null" else spaced(draw, parts, "{", "}")
            )
    elif draw(st.booleans()):
        members["stream_options"] = st.just("null")
    if draw(st.booleans()):
        ids = draw(st.lists(string_text(MODEL_ID), min_size=1, max_size=3))
        members["models"] = st.just(spaced(draw, ids, "[", "]"))
    for name in ("provider", "transforms", "route", "usage"):  # OpenRouter's, stripped
        if draw(st.booleans()):
            members[name] = VALUE
    extra = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in RESERVED), VALUE))
    texts = {k: draw(v) for k, v in members.items()}
    texts.update(extra)
    order = draw(st.permutations(list(texts)))
    parts = [
        json.dumps(k, ensure_ascii=False) + draw(SPACE) + ":" + draw(SPACE) + texts[k]
        for k in order
    ]
    return (draw(SPACE) + spaced(draw, parts, "{", "}") + draw(SPACE)).encode()


@given(chat_body(), st.sampled_from([PLAIN, DEFAULTS]))
def test_any_chat_body_is_spliced_to_what_encoding_it_whole_would_send(
    body: bytes, model: Model
) -> None:
    chat = parse_chat_request(body)
    assert chat.payload == json.loads(body) and chat.source is not None
    # spliced unless a top-level key needed escapes to be written
    escaped = any(b"\\" in json.dumps(k, ensure_ascii=False).encode() for k in chat.payload)
    assert (chat.source.members is None) == escaped
    check(body, model)


# -- what real clients sent, recorded in other projects' cassettes


def cassette_bodies() -> list[Any]:
    """The raw request bodies of chat-completion calls in the go-vcr and vcrpy cassettes
    (YAML single-quoted scalars: ``''`` is a quote, a line break and its indent fold to
    one space)."""
    if RECORDINGS is None:
        return recording_params([])
    found = []
    for path in sorted((RECORDINGS / "cassettes").rglob("*.yaml")):
        lines = path.read_text().split("\n")
        for n, line in enumerate(lines):
            if not line.startswith("    body: '{"):
                continue
            text = line.removeprefix("    body: '")
            while not text.rstrip().endswith("'") or text.rstrip().endswith("''"):
                n += 1
                text = text.rstrip() + " " + lines[n].strip()
            body = text.rstrip()[:-1].replace("''", "'").encode()
            if b'"messages"' in body:
                relative = path.relative_to(RECORDINGS / "cassettes")
                found.append(pytest.param(body, id=f"{relative.parent.name}/{relative.stem}"))
    return found


@pytest.mark.testdata
@pytest.mark.parametrize("body", cassette_bodies())
@pytest.mark.parametrize("model", [PLAIN, DEFAULTS], ids=["plain", "defaults"])
def test_recorded_client_bodies_are_spliced(body: bytes, model: Model) -> None:
    chat = parse_chat_request(body)
    assert chat.source is not None and chat.source.members is not None
    check(body, model)
