"""The `openai` npm package under node against a live gateway."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import trio

from ..servers import Gateway

NODE_DIR = Path(__file__).with_name("node")


def node_ready() -> str | None:
    """Why node cannot run the script, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        return f"run `npm ci --prefix {NODE_DIR}` first (make test does)"
    return None


async def test_openai_npm_package_chats_and_streams(gateway: Gateway) -> None:
    reason = node_ready()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = await trio.run_process(
        ["node", str(NODE_DIR / "chat.mjs"), gateway.url + "/v1", gateway.admin_key],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    seen = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert seen["nonStream"].startswith('You said: "hello from node".')
    assert seen["usage"]["total_tokens"] > 0
    assert seen["content"] == seen["nonStream"]
    assert seen["reasoning"].startswith("The user wrote 3 words")
    assert seen["chunks"] > 5
    assert seen["notFound"] == {"status": 404, "code": "model_not_found"}
    assert seen["modelCount"] == len(gateway.settings.catalog.models)
