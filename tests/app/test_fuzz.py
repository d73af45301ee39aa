"""Every route, any path, query and body: never a 5xx, always an OpenAI-shaped error,
never a traceback in the log.

The routes are read from the app's own URL map, so a new route is fuzzed without a word
here. Requests go through the in-process test client (the whole ASGI app, startup
included) with the demo provider, which needs no network; hypothesis runs in a worker
thread and hands each request to the trio loop that runs the app.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import pytest
import trio
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from saferouter.app import create_app
from saferouter.catalog import DEFAULT_CATALOG_PATH
from saferouter.config import load_settings
from saferouter.keys import generate_key
from saferouter.storage import Store
from saferouter.storage.postgres import PostgresStore
from saferouter.storage.sqlite import SQLiteStore

from ..schema_strategies import from_schema

METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]
QUERY_NAMES = [
    *("limit", "before", "since", "until", "model", "provider", "status", "key_id"),
    *("window", "start", "first", "second"),
]
BODY_FIELDS = [
    *("model", "messages", "stream", "stream_options", "models", "max_tokens"),
    *("max_completion_tokens", "name", "role", "credits_usd", "rpm_limit", "tpm_limit"),
    *("key_id", "amount_usd", "nonce"),
]
# What has broken parsers before: other scripts' digits, separators, exponents, lone
# surrogates, controls, injection into a header or a metrics line, long runs.
NASTY = [
    *("", " ", "0", "-1", "1e999999", "5_000", "١٢", "²", "99999999999999999999"),
    *("1.0000001", "NaN", "inf", "\ud800", "\udfff", "a\nb", "\x00", '"}\nfake 42'),
    *("../../etc/passwd", "%00", "demo", "demo-mini", "fake/x", "\u2028", "x" * 300),
]
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
# query values: two parts in three from NASTY, where the number parsers broke
nasty_text = st.one_of(st.sampled_from(NASTY), st.sampled_from(NASTY), st.text(max_size=40))
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_object = st.dictionaries(st.sampled_from(BODY_FIELDS) | text, json_value, max_size=5)


def encode_json(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as a client's JSON would
    return json.dumps(value).encode()


junk_body = st.one_of(
    json_object.map(encode_json), json_value.map(encode_json), st.binary(max_size=64)
)
REQUEST_TIMEOUT_S = 30
PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
# About 20-40 s for each test on a busy 2-core machine.
EXAMPLES_PER_ROUTE = 15
CHAT_EXAMPLES = 250


@attrs.frozen
class Call:
    method: str
    path: str  # already percent-encoded, with its query
    body: bytes
    auth: str | None


@attrs.define
class Fuzzed:
    admin_key: str
    routes: list[tuple[str, list[str], list[str]]]  # rule, methods, query names
    send: Callable[[Call], tuple[int, dict[str, str], bytes]]
    log: list[str]


async def test_junk_reaches_every_route_and_gets_4xx(fuzzed: Fuzzed) -> None:
    def run_every_route() -> None:
        # Route by route: drawn from all of them at once, a route's rare parameter would
        # meet its rare value once in tens of thousands of examples.
        for rule, methods, names in [*fuzzed.routes, (None, METHODS, QUERY_NAMES)]:

            @settings(**_budget(EXAMPLES_PER_ROUTE))
            @given(call=_call(rule, methods, names))
            def run(call: Call) -> None:
                _check(fuzzed, call)

            run()

    await trio.to_thread.run_sync(run_every_route)


async def test_nul_in_any_text_is_a_4xx_on_every_store(fuzzed: Fuzzed) -> None:
    """PostgreSQL's text cannot hold U+0000 (SQLite's can): wherever a client's text may
    reach the store — a path segment, a query value, a key's name — a NUL in it is
    refused as bad input before it does, on every store alike, never a 500."""
    nul = quote("a\x00b")
    calls = [Call("POST", "/v1/keys", encode_json({"name": "a\x00b"}), "admin")]
    for rule, methods, _ in fuzzed.routes:
        path = PARAM.sub(nul, rule)
        query = "&".join(f"{name}={nul}" for name in QUERY_NAMES)
        for method in methods:
            body = encode_json({"name": "a\x00b", "model": "demo", "messages": []})
            calls += [
                Call(method, path, body, "admin"),
                Call(method, f"{path}?{query}", b"", "admin"),
            ]

    def run() -> None:
        for call in calls:
            _check(fuzzed, call)

    await trio.to_thread.run_sync(run)


async def test_schema_shaped_chat_requests_never_fail_the_server(
    fuzzed: Fuzzed, testdata: Path
) -> None:
    path = testdata / "openai" / "openai-chat-schemas.nullable-normalized.json"
    defs = json.loads(path.read_text())["$defs"]
    request = from_schema(defs["CreateChatCompletionRequest"], defs, strings=text)
    models = st.one_of(st.just("demo"), st.just("demo-mini"), text)
    bodies = st.tuples(request, models).map(lambda pair: {**pair[0], "model": pair[1]})

    @settings(**_budget(CHAT_EXAMPLES))
    @given(body=bodies)
    def run(body: dict[str, Any]) -> None:
        _check(fuzzed, Call("POST", "/v1/chat/completions", encode_json(body), "admin"))

    await trio.to_thread.run_sync(run)


def _budget(max_examples: int) -> dict[str, Any]:
    return {
        "max_examples": max_examples,
        "deadline": None,
        "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }


def _check(fuzzed: Fuzzed, call: Call) -> None:
    fuzzed.log.clear()  # each request answers for its own log lines
    status, headers, body = fuzzed.send(call)
    if currently_in_test_context():  # (not in the fixed NUL cases)
        event(f"status {status}")
    upstream_failure = call.path.startswith("/v1/chat/completions") and status in (502, 503, 504)
    assert status < 500 or upstream_failure, (call, status, body[:300])
    assert not 300 <= status < 400, (call, status)  # no redirect with an HTML body
    assert b"Traceback" not in body
    if status >= 400 and call.method != "HEAD":
        assert headers.get("content-type", "").startswith("application/json"), (call, status)
        reply = json.loads(body)
        error = reply["error"]
        if call.path.startswith("/v1/messages") and reply.get("type") == "error":
            # count_tokens answers Anthropic's clients in Anthropic's shape (no param)
            assert set(reply) == {"type", "error"}, (call, body[:300])
            error = {"param": None, "code": None, **error}
        assert set(error) == {"message", "type", "param", "code"}, (call, body[:300])
        assert isinstance(error["message"], str) and error["message"]
        if upstream_failure:
            assert error["type"] == "upstream_error", (call, body[:300])
    assert not fuzzed.log, (call, fuzzed.log)


@st.composite
def _call(draw: st.DrawFn, rule: str | None, methods: list[str], names: list[str]) -> Call:
    """A request to ``rule`` (its parameters filled with junk), or to a junk path, with
    query parameters mostly of ``names``."""
    if rule is None:
        # (not "//…": the test client would read a host there; test_bad_input sends one)
        segments = draw(st.lists(text, max_size=4).filter(lambda s: not s or s[0]))
        path = "/" + "/".join(_quote(s) for s in segments)
    else:
        path = PARAM.sub(lambda m: _segment(draw, m.group(1)), rule)
    method = draw(st.sampled_from(methods) | st.sampled_from(METHODS))
    query = draw(st.dictionaries(st.sampled_from(names) | text, nasty_text, max_size=3))
    if query:
        path += "?" + urlencode(query, quote_via=quote, errors="surrogatepass")
    raw_query = draw(st.none() | st.text(st.characters(codec="ascii"), max_size=20))
    if raw_query is not None and "?" not in path:
        path += "?" + quote(raw_query, safe="=&%+")
    auth = draw(
        st.just("admin") | st.sampled_from([None, "Bearer sk-sr-wrong", "Basic eA==", "Bearer "])
    )
    return Call(method, path, draw(junk_body), auth)


def _segment(draw: st.DrawFn, converter: str | None) -> str:
    if converter == "int":
        value = draw(st.integers(0, 10**25).map(str) | text)
    elif converter == "path":
        value = "/".join(draw(st.lists(text, min_size=1, max_size=3)))
        return _quote(value, safe="/")
    else:
        value = draw(text)
    return _quote(value)


def _quote(value: str, safe: str = "") -> str:
    # a lone surrogate goes out as the bytes "surrogatepass" gives it: invalid UTF-8
    return quote(value, safe=safe, errors="surrogatepass")


@pytest.fixture(params=["sqlite", "postgres"])
async def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fuzzed]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        DEFAULT_CATALOG_PATH.read_text().replace(
            "demo_chunk_delay_ms = 25", "demo_chunk_delay_ms = 0"
        )
    )
    app_settings = load_settings({}, config=catalog, data_dir=tmp_path / "data")
    store: Store
    if request.param == "postgres":  # text PostgreSQL cannot hold (NUL) must not 500 either
        store = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        store = SQLiteStore(app_settings.data_dir / "saferouter.db")
    admin = generate_key()
    await store.create_key(
        name="admin", role="admin", key_hash=admin.hash, prefix=admin.display_prefix
    )
    app = create_app(app_settings, store=store)
    routes = [
        (rule.rule, sorted(rule.methods or ()), _query_names(app.view_functions[rule.endpoint]))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    ]
    async with app.test_app() as test_app, _open_sender(test_app, admin.secret) as send:
        with _captured_log() as log:
            yield Fuzzed(admin_key=admin.secret, routes=routes, send=send, log=log)


def _query_names(view: Callable[..., Any]) -> list[str]:
    """The query names the view's module mentions (all of them if none): a route meets
    its own parameters far more often than one in twelve."""
    source = inspect.getsource(sys.modules[view.__module__])
    return [name for name in QUERY_NAMES if f'"{name}"' in source] or QUERY_NAMES


@asynccontextmanager
async def _open_sender(
    test_app: Any, admin_key: str
) -> AsyncIterator[Callable[[Call], tuple[int, dict[str, str], bytes]]]:
    client = test_app.test_client()

    async def send_async(call: Call) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"}
        if call.auth == "admin":
            headers["Authorization"] = f"Bearer {admin_key}"
        elif call.auth is not None:
            headers["Authorization"] = call.auth
        # generous: a request that hangs fails the test instead of the whole run
        with trio.fail_after(REQUEST_TIMEOUT_S):
            # A connection read as it arrives: client.open() reads only after the app
            # ends, and a stream of more chunks than its channel holds would never end.
            async with client.request(call.path, method=call.method, headers=headers) as conn:
                await conn.send(call.body)
                await conn.send_complete()
                body = bytearray()
                with contextlib.suppress(trio.EndOfChannel):
                    while True:
                        body += await conn.receive()
        assert conn.status_code is not None and conn.headers is not None
        return conn.status_code, {k.lower(): v for k, v in conn.headers.items()}, bytes(body)

    def send(call: Call) -> tuple[int, dict[str, str], bytes]:
        return trio.from_thread.run(partial(send_async, call))

    yield send


@contextmanager
def _captured_log() -> Iterator[list[str]]:
    """Every WARNING-or-worse record of the server, formatted with any traceback."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)
