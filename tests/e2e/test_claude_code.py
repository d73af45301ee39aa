"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``, pinned in node/package.json)
against a real ``saferouter serve``, set up as the README says: ANTHROPIC_BASE_URL at the
gateway, ANTHROPIC_AUTH_TOKEN a SafeRouter key, ANTHROPIC_MODEL a catalog model.

A recording proxy (tests/recording_proxy.py) sits between the CLI and the gateway, so the
tests see every call Claude Code made (it adds ``?beta=true`` to each, calls
``count_tokens`` for ``/context``, and HEADs ``/api/hello``) and what each got; the
gateway's activity says what it billed, which must equal the usage Claude Code reports.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from ..claude_tool_upstream import TOOL_MARKER, USAGE, tool_result_text, tool_upstream
from ..processes import Served, new_key, serving
from ..recording_proxy import Exchange, recording_proxy
from ..recordings import RECORDINGS, anthropic_billed
from ..servers import fake_upstream, write_catalog

CLAUDE = Path(__file__).with_name("node") / "node_modules" / ".bin" / "claude"
RUN_TIMEOUT_S = 180  # a generous bound on a loaded machine; a run takes ~3 s
DEMO_SIGN = "This reply comes from SafeRouter's built-in demo provider"
RECORDED = "anthropic/llm-anthropic__claude-opus-4-6_adaptive_thinking_stream.sse"


def claude_missing() -> str | None:
    """Why the CLI cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not CLAUDE.exists():
        return f"run `npm ci --prefix {CLAUDE.parents[2]}` first (make test does)"
    return None


@pytest.fixture(autouse=True)
def _claude_code_installed() -> None:
    reason = claude_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def claude_env(home: Path, base_url: str, key: str, model: str) -> dict[str, str]:
    """The README's set-up, offline: nothing but the gateway is ever called (no
    telemetry, error reports, update checks), and a throwaway home holds its config.
    Built from scratch, so no ANTHROPIC_API_KEY of the machine's can leak in."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
    }


async def run_claude(env: dict[str, str], prompt: str, *options: str) -> dict[str, Any]:
    """``claude -p <prompt> --output-format json``: the result object it prints."""
    home = Path(env["HOME"])
    with trio.fail_after(RUN_TIMEOUT_S):
        done = await trio.run_process(
            [str(CLAUDE), "-p", prompt, "--output-format", "json", *options],
            env=env,
            cwd=home,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, (done.stdout.decode()[-2000:], done.stderr.decode()[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["is_error"] is False, result
    return result


async def claude_through_proxy(
    gateway_url: str, key: str, home: Path, model: str, prompt: str, *options: str
) -> tuple[dict[str, Any], list[Exchange]]:
    """Claude Code run through a recording proxy in front of the gateway: its result,
    and every call it made (checked: none failed that should not have)."""
    async with recording_proxy(gateway_url) as proxy:
        result = await run_claude(claude_env(home, proxy.url, key, model), prompt, *options)
    assert unexpected(proxy.exchanges) == [], proxy.exchanges
    return result, proxy.exchanges


def billed_by_claude(result: dict[str, Any]) -> tuple[int, int]:
    """Prompt and output tokens Claude Code counted over every model it called (input
    excludes cache reads and writes in Anthropic's usage; SafeRouter's prompt includes them)."""
    models = result["modelUsage"].values()
    prompt = sum(
        m["inputTokens"] + m["cacheReadInputTokens"] + m["cacheCreationInputTokens"] for m in models
    )
    return prompt, sum(m["outputTokens"] for m in models)


def activity(served: Served, key: str) -> list[dict[str, Any]]:
    response = httpx.get(
        served.url + "/v1/activity", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["data"]
    return entries


def unexpected(exchanges: list[Exchange]) -> list[Exchange]:
    """The calls that failed and should not have. Claude Code HEADs ``/api/hello``
    (Anthropic's own) only to open the connection early and ignores the answer (its
    code: ``fetch(base + "/api/hello", {method: "HEAD"}).catch(() => {})``): a 404 is
    right for a path SafeRouter does not serve."""
    return [
        e for e in exchanges if e.status >= 400 and (e.method, e.path) != ("HEAD", "/api/hello")
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A throwaway home: Claude Code's config, sessions and the prompt's cwd."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def key(data_dir: Path) -> str:
    return new_key(data_dir, "--name", "claude-code")


@pytest.fixture
def demo_gateway(data_dir: Path, key: str) -> Iterator[Served]:
    with serving(data_dir) as served:
        yield served
    assert_clean_log(served.output)


def assert_clean_log(output: str) -> None:
    assert "Traceback" not in output, output
    assert "unexpected" not in output, output


async def test_claude_code_answers_through_the_demo_and_is_billed_to_its_key(
    demo_gateway: Served, key: str, home: Path
) -> None:
    result, exchanges = await claude_through_proxy(
        demo_gateway.url, key, home, "demo", "Say hello to SafeRouter"
    )
    assert DEMO_SIGN in result["result"]
    assert result["stop_reason"] == "end_turn"
    # the demo calls Claude Code's first tool (Agent), which runs and fails (the demo's
    # made-up agent type does not exist), and the demo then answers with its result
    assert result["num_turns"] == 2 and result["result"].startswith("The tool Agent returned")
    calls = {(e.method, e.target) for e in exchanges if e.status < 400}
    assert calls == {("POST", "/v1/messages?beta=true")}
    entries = activity(demo_gateway, key)
    assert len(entries) == sum(e.target == "/v1/messages?beta=true" for e in exchanges)
    assert {(e["api"], e["provider"], e["status"], e["outcome"]) for e in entries} == {
        ("messages", "demo", 200, "ok")
    }
    assert all(e["streamed"] and not e["estimated"] for e in entries)
    assert all(e["response_id"].startswith("msg_") for e in entries)
    billed = sum(e["prompt_tokens"] for e in entries), sum(e["completion_tokens"] for e in entries)
    assert billed == billed_by_claude(result)
    assert billed[0] > 1000  # Claude Code's system prompt and tools, all of it counted


async def test_claude_code_works_on_a_key_with_prepaid_credits(
    demo_gateway: Served, data_dir: Path, home: Path
) -> None:
    # every request of Claude Code carries context_management (clear_thinking_…): a
    # metered key refused it as unbounded, so no prepaid key could use Claude Code
    metered = new_key(data_dir, "--name", "prepaid", "--credits", "1")
    result, _ = await claude_through_proxy(demo_gateway.url, metered, home, "demo", "Say hello")
    assert DEMO_SIGN in result["result"]
    entries = activity(demo_gateway, metered)
    assert len(entries) >= 1
    cost_micro_usd = sum(e["cost_micro_usd"] for e in entries)
    assert cost_micro_usd > 0
    books = httpx.get(
        demo_gateway.url + "/v1/credits", headers={"Authorization": f"Bearer {metered}"}
    ).json()
    assert (books["metered"], books["reserved_micro_usd"]) == (True, 0)
    assert books["balance_micro_usd"] == 1_000_000 - cost_micro_usd


async def test_claude_code_context_counts_tokens_through_the_gateway(
    demo_gateway: Served, key: str, home: Path
) -> None:
    result, exchanges = await claude_through_proxy(demo_gateway.url, key, home, "demo", "/context")
    assert "Context Usage" in result["result"]
    counted = [e for e in exchanges if e.target == "/v1/messages/count_tokens?beta=true"]
    assert len(counted) > 5  # one per tool and skill, in a burst
    assert {e.status for e in counted} == {200}
    assert activity(demo_gateway, key) == []  # counting tokens runs no model, bills nothing


@pytest.mark.testdata
async def test_claude_code_gets_an_anthropic_recording_through_a_provider(
    tmp_path: Path, data_dir: Path, key: str, home: Path
) -> None:
    assert RECORDINGS is not None
    recording = (RECORDINGS / RECORDED).read_bytes()
    async with fake_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        env = {"FAKE_API_KEY": "sk-upstream-secret-1234"}
        with serving(data_dir, "--config", str(catalog), env=env) as served:
            model = f"fake/replay:{RECORDED}@7"  # the recording in seeded random pieces
            result, _ = await claude_through_proxy(served.url, key, home, model, "hi")
            entries = activity(served, key)
        assert_clean_log(served.output)
    texts = [json.loads(line[6:]) for line in recording.split(b"\n") if b'"text_delta"' in line]
    last_text = "".join(t["delta"]["text"] for t in texts if t["index"] == 2)
    assert last_text.strip() in result["result"]
    upstream_calls = [r for r in upstream.requests if r["path"] == "/v1/messages"]
    assert len(upstream_calls) == len(entries) >= 1
    assert all(r["headers"]["X-Api-Key"] == "sk-upstream-secret-1234" for r in upstream_calls)
    assert all(key not in json.dumps(r["headers"]) for r in upstream_calls)
    usage = anthropic_billed(RECORDED)
    for entry in entries:
        assert (entry["api"], entry["provider"], entry["status"]) == ("messages", "fake", 200)
        assert (entry["prompt_tokens"], entry["completion_tokens"]) == (
            usage.prompt_tokens,
            usage.output_tokens,
        )
    assert billed_by_claude(result) == (
        usage.prompt_tokens * len(entries),
        usage.output_tokens * len(entries),
    )


async def test_claude_code_runs_a_tool_and_comes_back_through_the_gateway(
    tmp_path: Path, data_dir: Path, key: str, home: Path
) -> None:
    async with tool_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", upstream.url)
        env = {"FAKE_API_KEY": "sk-upstream-secret-1234"}
        with serving(data_dir, "--config", str(catalog), env=env) as served:
            result, _ = await claude_through_proxy(
                served.url,
                key,
                home,
                "fake/tools",
                "Print the marker with Bash",
                "--allowedTools",
                "Bash",
            )
            entries = activity(served, key)
        assert_clean_log(served.output)
    assert f"The tool printed: {TOOL_MARKER}" in result["result"]
    results = [tool_result_text(body) for body in upstream.bodies]
    assert any(text is not None and TOOL_MARKER in text for text in results), results
    assert len(entries) == len(upstream.bodies) >= 2
    for entry in entries:
        assert (entry["api"], entry["provider"], entry["status"]) == ("messages", "fake", 200)
        assert (entry["prompt_tokens"], entry["completion_tokens"]) == (
            USAGE["input_tokens"],
            USAGE["output_tokens"],
        )
