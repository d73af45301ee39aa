"""The per-API bench (bench/apis.py, issue 15) on a short run, so that it cannot rot:
a real `saferouter serve` with a catalog serving chat, Messages and Responses, the
bench's node mock answering each path in its own wire format, and the floor forwarding
every path, loaded by wrk and timed one request after another.

The section checks every arm's answer before timing it (a 200 whose stream ends with the
API's terminal event; SafeRouter's OpenRouter answer carrying its ``cost``) and wrk fails
it on any non-2xx, so a path SafeRouter answered with an error — or a stream it ended
with an error event — fails this test rather than passing for a fast one."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.processes import clean_env, free_port

from .bench_support import bench_upstreams, import_bench

APIS = {"chat", "chat_openrouter", "messages", "responses"}


@pytest.fixture
def apis(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/apis.py, imported as bench/run.py imports it (bench/ on the path)."""
    return import_bench(monkeypatch, "apis")


def test_each_api_is_measured_direct_through_the_floor_and_through_saferouter(
    apis: ModuleType, tmp_path: Path
) -> None:
    steps: list[str] = []
    with bench_upstreams() as upstreams:
        section = apis.measure(
            tmp_path,
            clean_env() | {"BENCH_UPSTREAM_KEY": "upstream-secret"},
            **upstreams,
            port=free_port(),
            seconds=1,  # raised to the section's least wrk run (3 s)
            rounds=1,
            requests=10,
            progress=steps.append,
        )
    assert steps == ["APIs: round 1 of 1"]
    assert len(section["load_average_1m"]) == 2
    figures = section["figures"]
    assert set(figures) == APIS
    for name, targets in figures.items():
        assert set(targets) == {"direct", "floor", "saferouter"}, name
        for target, figure in targets.items():
            assert 0 < figure["p50_ms"] <= figure["p95_ms"], (name, target)
            assert figure["rps"] > 0 and figure["cpu_ms_per_request"] > 0, (name, target)
            # one at a time, 30 requests may take less than a clock tick on a fast machine
            assert figure["cpu_ms_per_request_sequential"] >= 0, (name, target)
            added = {"added_p50_ms", "added_p95_ms"} & set(figure)
            assert added == (set() if target == "direct" else {"added_p50_ms", "added_p95_ms"})
    compared = section["compared"]
    assert set(compared) == APIS
    assert compared["chat"]["added_p50_over_chat_ms"] == 0
    assert compared["chat"]["cpu_over_chat_ms"] == 0
    assert compared["chat"]["cpu_sequential_over_chat_ms"] == 0
    assert all(c["cpu_to_floor"] > 0 and c["rps_to_floor"] > 0 for c in compared.values())
    table = apis.markdown(section).splitlines()
    assert table[2].startswith("| API (stream) |")
    assert sorted(line.split(" | ")[0] for line in table[4:]) == sorted(
        f"| {name.replace('_', ' ')}" for name in APIS
    )


def test_an_answer_not_ending_with_the_apis_terminal_event_fails_the_run(
    apis: ModuleType,
) -> None:
    # the mock's chat stream ends with [DONE]: asked for as a Messages stream, it fails
    chat, messages = apis.VARIANTS["chat"], apis.VARIANTS["messages"]
    wrong = messages._replace(path=chat.path, body=chat.body)
    with bench_upstreams() as upstreams:
        port = upstreams["mock_port"]
        apis.check_answer(port, {}, chat, saferouter=False)
        with pytest.raises(SystemExit, match="/v1/chat/completions"):
            apis.check_answer(port, {}, wrong, saferouter=False)
        # the mock adds no cost: what SafeRouter must add is looked for in its answer only
        openrouter = apis.VARIANTS["chat_openrouter"]
        apis.check_answer(port, {}, openrouter, saferouter=False)
        with pytest.raises(SystemExit):
            apis.check_answer(port, {}, openrouter, saferouter=True)
