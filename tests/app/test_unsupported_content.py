"""A metered key is refused what a request's bytes do not bound (400
``unsupported_content``), and the refusal names the field that holds the first such
thing in that API's own terms — ``input`` or ``tools`` in a Responses request,
``system``, ``messages`` or ``tools`` in a Messages one — not ``messages`` for every API.
Each body is parsed by its real dialect and admitted by the books on the memory store
(a metered key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from saferouter.errors import InvalidRequest
from saferouter.gateway.dialects import DIALECTS
from saferouter.storage import ActivityFilter
from saferouter.storage.memory import MemoryStore

from .test_books_record import admitted

TEXT = [{"role": "user", "content": "hi"}]
IMAGE_BLOCK = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
CASES = [
    (
        "/v1/chat/completions",
        {"messages": TEXT, "modalities": ["text", "audio"]},
        "modalities",
        "'modalities' beyond text",
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages",
        "messages[0].content[0] (image_url)",
    ),
    (
        "/v1/responses",
        {"input": "hi", "tools": [{"type": "web_search_preview"}]},
        "tools",
        "tools[0] (web_search_preview)",
    ),
    (
        "/v1/responses",
        {"input": [{"role": "user", "content": [{"type": "input_image"}]}], "tools": []},
        "input",
        "input[0].content[0] (input_image)",
    ),
    (
        "/v1/messages",
        {"max_tokens": 5, "messages": TEXT, "system": [{"type": "document"}]},
        "system",
        "system[0] (document)",
    ),
    (
        "/v1/messages",
        {"max_tokens": 5, "messages": TEXT, "tools": [{"type": "web_search_20250305"}]},
        "tools",
        "tools[0] (server tool web_search_20250305: its fees are not bounded)",
    ),
    (
        "/v1/messages",
        {"max_tokens": 5, "messages": [{"role": "user", "content": [IMAGE_BLOCK]}]},
        "messages",
        "messages[0].content[0] (image)",
    ),
]


@pytest.mark.parametrize(
    ("path", "fields", "param", "named"), CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES]
)
async def test_a_metered_key_is_refused_naming_the_field_of_the_first_unbounded_thing(
    tmp_path: Path, path: str, fields: dict[str, Any], param: str, named: str
) -> None:
    store = MemoryStore()
    body = json.dumps({"model": "chain-a", **fields}).encode()
    request = DIALECTS[path].parse(body, [])
    with pytest.raises(InvalidRequest) as caught:
        await admitted(tmp_path, store, credits=1_000_000, request=request, body=body)
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "unsupported_content", param)
    assert f"this request also has {named}." in error.message
    [refused] = await store.activity(ActivityFilter(limit=10))
    assert refused.error_type == "unsupported_content"
