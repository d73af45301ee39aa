"""The gateway as a separate process, as a user runs it (`python -m saferouter.cli`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "saferouter.cli"]
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


def new_key(data_dir: Path, *args: str) -> str:
    """`keys create` with these arguments; returns the secret."""
    result = cli(data_dir, "keys", "create", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("SAFEROUTER_")
    }


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: str = ""


@contextmanager
def serving(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    port: int | None = None,
) -> Iterator[Served]:
    """`saferouter serve` in a child process until the block ends (then SIGTERM);
    ``preexec_fn`` runs in the child before it starts (e.g. to set resource limits);
    ``port`` to serve again at the same URL (default: a free one)."""
    port = port or free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_env(), **(env or {})},
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            process.kill()
            raise AssertionError(process.communicate()[0])
        served = Served(url, process)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    served.output = output
