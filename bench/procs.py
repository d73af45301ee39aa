"""The processes a bench run starts and what it reads of them from /proc: CPU time
(of a process and its descendants, so `--workers 2` counts both workers), resident
memory, CPU pinning, and the machine's description for the results."""

from __future__ import annotations

import http.client
import os
import re
import resource
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    """Soft open-file limit up to the hard one (500 streams need 1000+ sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def process(
    args: list[str], cpus: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` pinned to ``cpus`` (a taskset list, "0" or "0-1"), terminated on exit.
    taskset execs the command, so the pid is the command's own. Its stderr goes to a
    temporary file, not a pipe nobody reads: a server that logged 64 KiB into a pipe
    would block in the middle of a measurement."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            ["taskset", "-c", cpus, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=raise_fd_limit,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_answering(port: int, path: str, headers: dict[str, str], body: str) -> None:
    """Return once a POST to ``path`` gets a 200 (a port listens before the app is ready:
    `--workers` binds it in the parent, then the workers import and start)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", path, body=body, headers=headers)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit(f"no 200 from {port}{path}")


def parse_stat(text: str) -> tuple[int, int]:
    """(parent pid, utime + stime in clock ticks) from a /proc/<pid>/stat line. The
    command name (field 2) may hold spaces and parentheses, so fields are counted from
    its last ')' (proc(5))."""
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _stats() -> dict[int, tuple[int, int]]:
    """(parent pid, CPU ticks) of every live process."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = parse_stat((entry / "stat").read_text())
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited while we looked
    return stats


def _tree(pid: int, stats: dict[int, tuple[int, int]]) -> set[int]:
    """``pid`` and its live descendants in ``stats``."""
    tree: set[int] = set()
    grown = {pid}
    while grown != tree:  # grandchildren too: grow until nothing new joins
        tree = grown
        grown = tree | {p for p, (ppid, _) in stats.items() if ppid in tree}
    return {p for p in tree if p in stats}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    stats = _stats()
    return sum(stats[p][1] for p in _tree(pid, stats)) / CLOCK_TICKS_PER_S


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid``, KiB."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1))


def repin(pid: int, cpus: str, *, descendants: bool = False) -> None:
    """Move every thread of a running process to ``cpus`` (node runs several); with
    ``descendants``, of its live child processes too (PostgreSQL's server processes)."""
    for each in sorted(_tree(pid, _stats())) if descendants else [pid]:
        done = subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(each)], capture_output=True)
        # a child may end between the listing and its turn (a closed database session)
        if done.returncode != 0 and Path(f"/proc/{each}").exists():
            raise RuntimeError(f"taskset {cpus} {each}: {done.stderr.decode().strip()}")


def machine() -> dict[str, object]:
    """The CPU model and core count, for the results' heading."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    return {
        "cpu": model.group(1).strip() if model else "unknown CPU",
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
    }
