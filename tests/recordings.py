"""The provider recordings in ../shared/testdata/recordings, as test parameters.

Collected at import time so that pytest can parametrize over them; when the data is
absent :func:`recording_params` gives one placeholder marked ``testdata``, and
tests/conftest.py decides skip or fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from saferouter.accounting import Usage

from .conftest import testdata_dir

_ROOT = testdata_dir()
RECORDINGS = _ROOT / "recordings" if _ROOT else None


def index() -> list[dict[str, Any]]:
    if RECORDINGS is None:
        return []
    files: list[dict[str, Any]] = json.loads((RECORDINGS / "index.json").read_text())["files"]
    return files


def sse_paths() -> list[str]:
    """The 55 raw `.sse` bodies, relative to recordings/."""
    return sorted(f["out"] for f in index() if f["out"].endswith(".sse"))


def jsonl_paths() -> list[str]:
    return sorted(f["out"] for f in index() if f["out"].endswith(".chunks.jsonl"))


def nonstream_paths() -> list[str]:
    return sorted(f["out"] for f in index() if f["out"].startswith("nonstream/"))


def stream_bytes(relative: str) -> bytes:
    """The wire bytes of a stream recording (.sse as is; .chunks.jsonl rebuilt as its
    README says: `data: <line>\\n\\n` per line, then `data: [DONE]\\n\\n`)."""
    assert RECORDINGS is not None
    path = RECORDINGS / relative
    if relative.endswith(".sse"):
        return path.read_bytes()
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    return b"".join(b"data: " + ln + b"\n\n" for ln in lines) + b"data: [DONE]\n\n"


def extra_index() -> dict[str, dict[str, Any]]:
    """index-extra.json: provenance and expected ``final_usage`` of the recordings added
    for issue 15 (responses/, anthropic/), by path relative to recordings/."""
    if RECORDINGS is None:
        return {}
    extra: dict[str, dict[str, Any]] = json.loads((RECORDINGS / "index-extra.json").read_text())
    return extra


def responses_usages() -> dict[str, Usage | None]:
    """Every OpenAI Responses recording and the usage it should bill: index-extra.json's
    ``final_usage``, or index.json's analysis for the older streams (None: no usage, a
    failure)."""
    flat: dict[str, dict[str, Any] | None] = {
        path: entry["final_usage"]
        for path, entry in extra_index().items()
        if entry.get("format") == "openai-responses"
    }
    for entry in index():
        raw = entry.get("analysis", {}).get("final_usage")
        if entry.get("api") == "responses" and raw is not None:
            flat[entry["out"]] = {
                "input_tokens": raw["input_tokens"],
                "cached_tokens": raw["input_tokens_details"]["cached_tokens"],
                "output_tokens": raw["output_tokens"],
                "reasoning_tokens": raw["output_tokens_details"]["reasoning_tokens"],
            }
    return {
        path: None
        if final is None
        else Usage(
            prompt_tokens=final["input_tokens"],
            cached_tokens=final["cached_tokens"],
            output_tokens=final["output_tokens"],
            reasoning_tokens=final["reasoning_tokens"],
            cache_write_tokens=final.get("cache_write_tokens", 0),
        )
        for path, final in flat.items()
    }


def typed_stream_bytes(relative: str) -> bytes:
    """The wire bytes of a stream whose events are typed (Responses, Anthropic): an .sse
    as is; an AI SDK .chunks.jsonl rebuilt as its README says, ``event: <type>`` and
    ``data: <line>`` per line (no ``[DONE]``: these APIs have none)."""
    assert RECORDINGS is not None
    raw = (RECORDINGS / relative).read_bytes()
    if relative.endswith(".sse"):
        return raw
    lines = [line for line in raw.split(b"\n") if line.strip()]
    return b"".join(
        b"event: " + json.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n"
        for line in lines
    )


def entry(relative: str) -> dict[str, Any]:
    return next(f for f in index() if f["out"] == relative)


def recording_params(paths: list[str]) -> list[Any]:
    """``paths`` as parameters named by file. Without the data, one placeholder marked
    ``testdata`` (skipped, or a failure under CI) instead of an empty set, which pytest
    would skip silently under a reason that does not say what is missing."""
    if RECORDINGS is None:
        return [pytest.param(None, id="no-testdata", marks=pytest.mark.testdata)]
    return [pytest.param(p, id=Path(p).name) for p in paths]


def anthropic_billed(relative: str) -> Usage:
    """What an Anthropic recording should bill (index-extra.json's expected usage, summed
    over ``iterations`` where there are some): input, cache reads and cache writes make
    the prompt, as :class:`~saferouter.accounting.Usage` counts it."""
    final = extra_index()[relative]["final_usage"]
    counts = final.get("iterations_total", final)
    read, write = counts["cache_read_input_tokens"], counts["cache_creation_input_tokens"]
    return Usage(
        prompt_tokens=counts["input_tokens"] + read + write,
        cached_tokens=read,
        cache_write_tokens=write,
        output_tokens=counts["output_tokens"],
    )
