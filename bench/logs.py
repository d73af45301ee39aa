"""Logs that scale (issue 12 §5): append a million receipt-shaped leaves to a log in a real
SQLite data dir, and show that heads and proofs cost the same at 1 k and at 1 M leaves.

  1. append cost: every leaf through ``storage.logs.append`` (the one append function a
     request's receipt goes through), one ``BEGIN IMMEDIATE … COMMIT`` per append as a
     request's write does; µs per append, CPU and wall. A second figure batches 1000
     appends per transaction (what the group commit does under load).
  2. latency at 1 k and at 1 M leaves: a copy of the data dir taken at 1 k is measured
     in turns with the full one, sample by sample, so that a machine whose load changes
     favours neither (medians; each read at a random index or first size).
     ``SignedLog.head()`` (cached: the signed head of an unchanged log), a head at a new
     size (it signs), ``inclusion``, ``consistency``; and through the HTTP endpoints of a
     gateway running on each data dir: ``GET /attestation/<log>/head``,
     ``/attestation/<log>/{index}`` (the entry with its inclusion proof) and
     ``/attestation/<log>/proof?first=``.
  3. the ratio of each latency at 1 M to the one at 1 k (the target: ≤ 2).

The leaves go to the startup log by default (``transparency`` over HTTP), whose entries
the gateway serves today; ``--log receipts`` fills the receipt log instead. The leaf
bodies are canonical receipts (RFC 8785, ~1 KB) with fresh ids; how they are made
(a template) is not counted in the append cost.

Usage: .venv/bin/python bench/logs.py [--leaves N] [--log NAME] [--data-dir D] [--quick]
(``--quick``: 2,000 leaves, a smoke run; the default, 1,000,000, takes several minutes.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from saferouter.attestation.identity import load_or_create_identity
from saferouter.storage import NewLogEntry, logs
from saferouter.storage.replicas import log_name
from saferouter.storage.sqlite import DB_NAME, SQLiteStore, connect
from saferouter.translog import merkle
from saferouter.translog.log import SignedLog
from saferouter.translog.receipt import receipt_bytes, receipt_leaf_hash

SMALL = 1_000
ID_SLOT = "0" * 24  # where each receipt's fresh id goes in the template
HTTP_NAMES = {"startup": "transparency"}  # a log's name in the URL, where it differs


def receipt_template() -> bytes:
    """A receipt as the receipts stage makes one (spec12.md), canonical, ids blank."""
    receipt = {
        "version": 1,
        "receipt_id": "rcpt_" + ID_SLOT,
        "request_id": "req_" + ID_SLOT,
        "time": 1_800_000_000,
        "key_id": "key_0123456789abcdef",
        "salt": "ab" * 32,
        "request_commitment": "cd" * 32,
        "response_sha256": "ef" * 32,
        "response_bytes": 1834,
        "status": 200,
        "stream": True,
        "outcome": "ok",
        "requested_model": "gpt-4o-mini",
        "served_model": "gpt-4o-mini",
        "provider": "openai",
        "attempts": [
            {
                "number": 1,
                "provider": "openai",
                "model": "gpt-4o-mini",
                "outcome": "ok",
                "status": 200,
            }
        ],
        "usage": {"prompt_tokens": 412, "completion_tokens": 128, "total_tokens": 540},
        "prices": {
            "model": "gpt-4o-mini",
            "input_micro_usd_per_mtok": 150_000,
            "output_micro_usd_per_mtok": 600_000,
        },
        "cost_micro_usd": 139,
        "estimated": False,
        "measurement": "12" * 32,
        "identity": "34" * 32,
        "tls_spki_sha256": None,
        "audit_sample": False,
    }
    return receipt_bytes(receipt)


def make_entry(template: bytes, index: int) -> NewLogEntry:
    """Receipt number ``index``: its canonical bytes and RFC 9162 leaf hash."""
    body = template.replace(ID_SLOT.encode(), b"%024x" % index)
    return NewLogEntry(body=body, leaf_hash=merkle.leaf_hash(body))


def append_leaves(path: Path, log: str, count: int, *, batch: int = 1) -> dict[str, float]:
    """Append ``count`` leaves, ``batch`` per transaction; µs per append, CPU and wall.
    Each receipt is made before its transaction's clock starts: the receipts stage
    makes it, the log only keeps it."""
    db = connect(path)
    template = receipt_template()
    first = make_entry(template, 0)
    assert first.leaf_hash == receipt_leaf_hash(json.loads(first.body))  # receipt-shaped
    cpu_s = wall_s = 0.0
    done = 0
    while done < count:
        made = [make_entry(template, done + i) for i in range(min(batch, count - done))]
        wall, cpu = time.perf_counter(), time.process_time()
        db.execute("BEGIN IMMEDIATE")
        for entry in made:
            logs.append(db, log, lambda index, previous, entry=entry: entry, time.time())  # type: ignore[misc]
        db.execute("COMMIT")
        wall_s += time.perf_counter() - wall
        cpu_s += time.process_time() - cpu
        done += len(made)
    db.close()
    return {
        "us_per_append_wall": round(wall_s / count * 1e6, 1),
        "us_per_append_cpu": round(cpu_s / count * 1e6, 1),
    }


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


Read = Callable[[], Awaitable[object]]


async def paired(reads: tuple[Read, Read], repeats: int) -> tuple[float, float]:
    """Median µs of each of two reads, taken in turns (one of each per round): a
    machine that slows down meanwhile slows both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for read, out in zip(reads, samples, strict=True):
            start = time.perf_counter()
            await read()
            out.append(time.perf_counter() - start)
    return median_us(samples[0]), median_us(samples[1])


async def through_signed_log(
    datas: tuple[Path, Path], log: str, repeats: int
) -> list[dict[str, float]]:
    """Latency (µs, median) of the log's reads in this process, on the real store, for
    each of two data dirs in turns."""
    stores = [SQLiteStore(data / DB_NAME) for data in datas]
    key = load_or_create_identity(datas[0])
    logs_ = [SignedLog(store, name=log, origin=f"bench/{log}", key=key) for store in stores]
    sizes = [(await signed.head()).size for signed in logs_]
    rng = random.Random(5)

    def reads(make: Callable[[SignedLog, int], Read]) -> tuple[Read, Read]:
        return make(logs_[0], sizes[0]), make(logs_[1], sizes[1])

    def fresh_head(signed: SignedLog, size: int) -> Read:
        # a new SignedLog has no head cached: it reads the root and signs
        return lambda: SignedLog(signed.store, name=log, origin=signed.origin, key=key).head()

    figures = {
        "head_cached_us": reads(lambda signed, size: signed.head),
        "head_signed_us": reads(fresh_head),
        "inclusion_us": reads(
            lambda signed, size: lambda: signed.inclusion(rng.randrange(size), size)
        ),
        "consistency_us": reads(
            lambda signed, size: lambda: signed.consistency(rng.randrange(size))
        ),
    }
    out: list[dict[str, float]] = [{}, {}]
    for name, pair in figures.items():
        out[0][name], out[1][name] = await paired(pair, repeats)
    for store in stores:
        await store.close()
    return out


@contextmanager
def gateway(data: Path) -> Iterator[int]:
    """``saferouter serve`` on the data dir (it appends its own startup entry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEROUTER_")}
    command = [sys.executable, "-m", "saferouter.cli", "serve", "--data-dir", str(data)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while http_status(port, "/ready") != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the gateway did not become ready")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def through_http(ports: tuple[int, int], log: str, repeats: int) -> list[dict[str, float]]:
    """Latency (µs, median) of the public GETs of two gateways in turns, one keep-alive
    connection to each."""
    name = HTTP_NAMES.get(log, log)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for port in ports]

    def getter(conn: http.client.HTTPConnection) -> Callable[[str], dict[str, Any]]:
        def get(path: str) -> dict[str, Any]:
            conn.request("GET", f"/attestation/{name}{path}")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
            return dict(json.loads(body))

        return get

    gets = [getter(conn) for conn in conns]
    sizes = [int(get("/head")["tree_size"]) for get in gets]
    rng = random.Random(7)
    paths: dict[str, Callable[[int], str]] = {
        "http_head_us": lambda size: "/head",
        "http_entry_us": lambda size: f"/{rng.randrange(size)}",
        "http_proof_us": lambda size: f"/proof?first={rng.randrange(size)}",
    }
    out: list[dict[str, float]] = [{}, {}]
    for figure, path in paths.items():

        def read(i: int, path: Callable[[int], str] = path) -> Read:
            async def go() -> object:
                return gets[i](path(sizes[i]))

            return go

        out[0][figure], out[1][figure] = trio.run(paired, (read(0), read(1)), repeats)
    for conn in conns:
        conn.close()
    return out


def measure(small: Path, full: Path, log: str, stored: str, repeats: int) -> list[dict[str, float]]:
    """Every latency figure of the two data dirs, measured in turns: the ``log`` kind
    served over HTTP, ``stored`` the name its rows have in the store."""
    figures = trio.run(through_signed_log, (small, full), stored, repeats)
    with gateway(small) as small_port, gateway(full) as full_port:
        http_figures = through_http((small_port, full_port), log, repeats)
    return [f | h for f, h in zip(figures, http_figures, strict=True)]


def run(data: Path, log: str, leaves: int, repeats: int) -> dict[str, Any]:
    """Fill ``data`` with ``leaves`` leaves; a copy of it at 1 k is the other arm."""
    # the gateway's own identity, made before it starts: its logs are named by it
    identity = load_or_create_identity(data).public_key().public_bytes_raw()
    stored = log_name(log, identity)
    trio.run(SQLiteStore(data / DB_NAME).close)  # the schema
    result: dict[str, Any] = {"log": log, "stored_as": stored, "leaves": leaves}
    result["data_dir"] = str(data)
    with tempfile.TemporaryDirectory(prefix="saferouter-logs-") as tmp:
        batched = Path(tmp) / "batched.db"
        trio.run(SQLiteStore(batched).close)
        result["batched_1000"] = append_leaves(batched, stored, min(leaves, 100_000), batch=1000)
        first = append_leaves(data / DB_NAME, stored, SMALL)
        small = Path(tmp) / "at-1k"
        shutil.copytree(data, small)  # no writer is open: the files are the database
        more = append_leaves(data / DB_NAME, stored, leaves - SMALL)
        result["append"] = {  # over every append
            k: round((first[k] * SMALL + more[k] * (leaves - SMALL)) / leaves, 1) for k in more
        }
        result["at_1k"], result["at_full"] = measure(small, data, log, stored, repeats)
    result["ratio"] = {
        k: round(result["at_full"][k] / result["at_1k"][k], 2) for k in result["at_1k"]
    }
    result["within_2x"] = all(r <= 2.0 for r in result["ratio"].values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--log", default="startup")
    parser.add_argument("--data-dir", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 leaves, 50 repeats")
    args = parser.parse_args()
    leaves, repeats = (2 * SMALL, 50) if args.quick else (args.leaves, args.repeats)
    with tempfile.TemporaryDirectory(prefix="saferouter-logs-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(data, args.log, leaves, repeats), indent=2))


if __name__ == "__main__":
    main()
