"""The provider recordings in ../shared/testdata/recordings, as test parameters.

Collected at import time so that pytest can parametrize over them; when the data is
absent the lists are empty and the `testdata` fixture decides skip or fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def entry(relative: str) -> dict[str, Any]:
    return next(f for f in index() if f["out"] == relative)


def ids(paths: list[str]) -> list[str]:
    return [Path(p).name for p in paths]
