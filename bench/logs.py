"""Logs that scale (issue 12 §5): append a million receipt-shaped leaves to a log in a real
SQLite data dir, and show that heads and proofs cost the same at 1 k and at 1 M leaves.

  1. append cost: every leaf through ``storage.logs.append`` (the one append function a
     request's receipt goes through), one ``BEGIN IMMEDIATE … COMMIT`` per append as a
     request's write does; µs per append, CPU and wall. A second figure batches 1000
     appends per transaction (what the group commit does under load).
  2. latency at 1 k and at 1 M leaves (median of many, each at a random index / first
     size): ``SignedLog.head()`` (cached: the signed head of an unchanged log), a head at a
     new size (it signs), ``inclusion``, ``consistency``; and through the HTTP endpoints
     of a running gateway on that data dir: ``GET /attestation/<log>/head``,
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


async def timed(run: Callable[[], Awaitable[object]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return median_us(samples)


async def through_signed_log(path: Path, data: Path, log: str, repeats: int) -> dict[str, float]:
    """Latency (µs, median) of the log's reads in this process, on the real store."""
    store = SQLiteStore(path)
    key = load_or_create_identity(data)
    signed = SignedLog(store, name=log, origin=f"bench/{log}", key=key)
    size = (await signed.head()).size
    rng = random.Random(5)

    async def new_head() -> object:
        return await SignedLog(store, name=log, origin=f"bench/{log}", key=key).head()

    out = {
        "head_cached_us": await timed(signed.head, repeats),
        "head_signed_us": await timed(new_head, repeats),
        "inclusion_us": await timed(lambda: signed.inclusion(rng.randrange(size), size), repeats),
        "consistency_us": await timed(lambda: signed.consistency(rng.randrange(size)), repeats),
    }
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


def through_http(port: int, log: str, repeats: int) -> dict[str, float]:
    """Latency (µs, median) of the public GETs, one keep-alive connection."""
    name = HTTP_NAMES.get(log, log)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(path: str) -> dict[str, Any]:
        conn.request("GET", f"/attestation/{name}{path}")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return dict(json.loads(body))

    size = int(get("/head")["tree_size"])
    rng = random.Random(7)
    out = {}
    for figure, path in (
        ("http_head_us", lambda: "/head"),
        ("http_entry_us", lambda: f"/{rng.randrange(size)}"),
        ("http_proof_us", lambda: f"/proof?first={rng.randrange(size)}"),
    ):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            get(path())
            samples.append(time.perf_counter() - start)
        out[figure] = median_us(samples)
    conn.close()
    return out


def measure(data: Path, log: str, repeats: int) -> dict[str, float]:
    figures = trio.run(through_signed_log, data / DB_NAME, data, log, repeats)
    with gateway(data) as port:
        figures |= through_http(port, log, repeats)
    return figures


def run(data: Path, log: str, leaves: int, repeats: int) -> dict[str, Any]:
    path = data / DB_NAME
    load_or_create_identity(data)  # the gateway's own identity, made before it starts
    trio.run(SQLiteStore(path).close)  # the schema
    result: dict[str, Any] = {"log": log, "leaves": leaves, "data_dir": str(data)}
    result["batched_1000"] = append_leaves(path, "bench-batched", min(leaves, 100_000), batch=1000)
    result["append"] = append_leaves(path, log, SMALL)
    result["at_1k"] = measure(data, log, repeats)
    more = append_leaves(path, log, leaves - SMALL)
    result["append"] = {  # weighted over every append
        k: round((result["append"][k] * SMALL + more[k] * (leaves - SMALL)) / leaves, 1)
        for k in more
    }
    result["at_full"] = measure(data, log, repeats)
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
