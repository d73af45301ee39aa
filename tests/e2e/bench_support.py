"""What the bench's e2e tests share: bench/'s modules imported as bench/run.py imports
them (bench/ on the path), free ports, and the bench's node mock with the floor in front
of it, started as run.py starts them."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.processes import clean_env, free_port

BENCH = Path(__file__).resolve().parents[2] / "bench"


def import_bench(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """bench/``name``.py; the test skips where the bench's tools are missing."""
    for tool in ("node", "wrk", "taskset"):
        if shutil.which(tool) is None:
            pytest.skip(f"the bench needs {tool} (apt-get install wrk nodejs util-linux)")
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module(name)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@contextmanager
def bench_upstreams() -> Iterator[dict[str, Any]]:
    """The bench's node mock and its floor in front of it (call :func:`import_bench`
    first): ``direct`` and ``floor`` as (port, headers, pid), and ``mock_port``."""
    procs = importlib.import_module("procs")
    measure = importlib.import_module("measure")
    mock_port, floor_port = free_ports(2)
    floor_command = [sys.executable, str(BENCH / "floor_app.py"), str(floor_port)]
    floor_command.append(f"http://127.0.0.1:{mock_port}/v1")
    cpus = "0-1" if len(os.sched_getaffinity(0)) > 1 else "0"
    mock_command = ["node", str(BENCH / "mock_upstream.mjs"), str(mock_port)]
    with (
        procs.process(mock_command, cpus) as mock,
        procs.process(floor_command, cpus, clean_env()) as floor,
    ):
        for port in (mock_port, floor_port):
            procs.wait_until_answering(port, measure.PATH, {}, measure.BODY)
        yield {
            "direct": (mock_port, {}, mock.pid),
            "floor": (floor_port, {}, floor.pid),
            "mock_port": mock_port,
        }
