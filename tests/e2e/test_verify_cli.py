"""`saferouter verify` against real gateway processes: restarts, and every tamper."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from saferouter.verify.client import run_checks

from ..processes import cli, serving
from ..servers import running_server


def start_and_stop(data: Path, times: int = 1) -> None:
    for _ in range(times):
        with serving(data):
            pass


def verify(url: str, state: Path | None = None, audience: str | None = None) -> tuple[bool, str]:
    checked = run_checks(url, state_path=state, allow_demo=True, audience=audience)
    text = "\n".join(f"({s.number}) {s.name}: {s.detail}" for s in checked.steps)
    assert checked.passed == (len(checked.steps) == 12 and all(s.ok for s in checked.steps))
    return checked.passed, text


def failing_step(url: str, state: Path | None = None, audience: str | None = None) -> str:
    ok, text = verify(url, state, audience)
    assert not ok, text
    return text.splitlines()[-1]


def test_passes_fresh_and_after_restarts(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    for start in range(5):
        with serving(data) as served:
            ok, text = verify(served.url, state)
            assert ok, text
            head = httpx.get(served.url + "/attestation/transparency/head").json()
            assert head["tree_size"] == start + 1
    (remembered,) = json.loads(state.read_text())["replicas"]  # one replica, five starts
    assert remembered["startup"]["size"] == 5
    with serving(data) as served:
        # the CLI prints the measurement the quotes carry (the listen address is part of
        # it: it is the default audience)
        port = served.url.rpartition(":")[2]
        result = cli(tmp_path, "measure", "--port", port)
        status = httpx.get(served.url + "/attestation").json()
        assert status["measurement"] == result.stdout.strip().splitlines()[-1]
        done = cli(
            tmp_path,
            "verify",
            served.url,
            "--expect-measurement",
            status["measurement"],
            "--state",
            str(state),
            "--allow-demo",
        )
        assert done.returncode == 0, done.stdout
        assert done.stdout.strip().endswith("VERIFIED (DEMO root — no hardware guarantee)")
        wrong = cli(
            tmp_path,
            "verify",
            served.url,
            "--expect-measurement",
            "00" * 32,
            "--json",
            "--allow-demo",
        )
        assert wrong.returncode == 1
        assert json.loads(wrong.stdout)["steps"][-1]["name"] == "measurement"


def rewrite(data: Path, change: str, *args: object) -> None:
    db = sqlite3.connect(data / "saferouter.db")
    db.execute(change, args)
    db.commit()
    db.close()


def test_an_edited_entry_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_and_stop(data, 3)
    db = sqlite3.connect(data / "saferouter.db")
    (body,) = db.execute(
        "SELECT body FROM log_entries WHERE log LIKE 'startup/%' AND idx = 1"
    ).fetchone()
    db.close()
    edited = bytes(body).replace(b"saferouter/0.1.0", b"saferouter/6.6.6")
    rewrite(data, "UPDATE log_entries SET body = ? WHERE log LIKE 'startup/%' AND idx = 1", edited)
    with serving(data) as served:
        assert failing_step(served.url).startswith("(8) startup log")


def test_a_deleted_entry_fails(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    start_and_stop(data, 2)
    with serving(data) as served:
        assert verify(served.url, state)[0]
    rewrite(data, "DELETE FROM log_entries WHERE log LIKE 'startup/%' AND idx = 1")
    with serving(data) as served:
        assert "missing" in failing_step(served.url)
        assert failing_step(served.url, state).startswith("(8) startup log")


def test_another_key_is_another_replica_not_the_remembered_one(tmp_path: Path) -> None:
    """Issue 14: replicas behind one load balancer each sign with their own identity, so
    a verifier that remembers one and meets a new key meets a new replica — its own log
    and attestation, a first visit — and no history signed by the remembered key is
    ever served as the new key's (before, one log was re-signed under the new key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    data, state = tmp_path / "data", tmp_path / "state.json"
    start_and_stop(data, 2)
    with serving(data) as served:
        assert verify(served.url, state)[0]
    key = ed25519.Ed25519PrivateKey.generate()  # the data dir's identity, swapped
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    (data / "identity.key").write_bytes(raw)
    identity = key.public_key().public_bytes_raw().hex()
    with serving(data) as served:
        ok, text = verify(served.url, state)
        assert ok, text
        assert f"first visit of replica {identity[:16]}…; 1 other replica(s) remembered" in text
        head = httpx.get(served.url + "/attestation/transparency/head").json()
        assert head["tree_size"] == 1  # its own start only: the old key's three are not its
        status = httpx.get(served.url + "/attestation").json()
        assert status["replica"] == identity
        assert [r["startup_head"]["tree_size"] for r in status["replicas"]] == [3]
    remembered = [s["identity"] for s in json.loads(state.read_text())["replicas"]]
    assert len(remembered) == 2 and remembered[-1] == identity


def test_a_forked_log_fails(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state.json"
    start_and_stop(a, 2)
    shutil.copytree(a, b)  # same identity, same history …
    start_and_stop(a, 1)
    start_and_stop(b, 1)  # … then each appends its own third start
    with serving(a) as served:
        assert verify(served.url, state)[0]
    with serving(b) as served:
        line = failing_step(served.url, state)
    assert line.startswith("(10) history") and "not consistent" in line


@asynccontextmanager
async def tampering_proxy(target: str, mode: str) -> AsyncIterator[str]:
    """A real HTTP server in front of the gateway that lies in one way."""
    app = QuartTrio("proxy", static_folder=None)
    first_quote: list[bytes] = []

    @app.route("/<path:path>", methods=["GET", "POST"])
    async def forward(path: str) -> Response:
        async with httpx.AsyncClient(base_url=target, timeout=30) as client:
            upstream = await client.request(
                request.method,
                "/" + path,
                params=dict(request.args),
                content=await request.get_data(),
            )
        body = upstream.content
        if mode == "replay" and path == "attestation/quote":
            first_quote.append(body)
            body = first_quote[0]
        if mode == "bad-inclusion" and path.startswith("attestation/transparency/"):
            data = json.loads(body)
            if "verification" in data:  # an entry, served with its inclusion proof
                hashes = data["verification"]["inclusionProof"]["hashes"]
                hashes[0] = "ff" * 32
                body = json.dumps(data).encode()
        if mode == "endless" and path == "attestation/transparency":
            start = int(request.args.get("start", 0))  # a full page whatever was asked
            entries = [{"index": start + i, "body": "e30="} for i in range(1000)]
            body = json.dumps({"object": "list", "data": entries}).encode()
        if mode == "null-checkpoint" and path == "attestation/transparency/head":
            body = json.dumps({**json.loads(body), "checkpoint": None}).encode()
        if mode == "as-amd" and path in ("attestation", "attestation/quote"):
            data = json.loads(body)
            data["mode"] = "sev-snp"
            body = json.dumps(data).encode()
        return Response(body, status=upstream.status_code, content_type="application/json")

    async with running_server(app) as url:
        yield url


async def test_a_replayed_quote_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_and_stop(data, 1)
    with serving(data) as served:
        audience = served.url.removeprefix("http://")
        async with tampering_proxy(served.url, "replay") as proxy:
            first = await trio.to_thread.run_sync(verify, proxy, None, audience)
            second = await trio.to_thread.run_sync(failing_step, proxy, None, audience)
    assert first[0], first[1]
    assert second.startswith("(4) REPORT_DATA binding") and "replayed" in second


@pytest.mark.parametrize(
    ("mode", "starts", "step", "why"),
    [
        ("as-amd", 1, "(3) report and chain", "not a genuine AMD"),
        # the third start's entry has an inclusion proof of two hashes
        ("bad-inclusion", 2, "(8) startup log", "entry 2's inclusion proof"),
    ],
)
async def test_a_tampered_answer_fails_its_step(
    tmp_path: Path, mode: str, starts: int, step: str, why: str
) -> None:
    """A demo report presented as AMD's; a wrong inclusion proof of the newest entry."""
    data = tmp_path / "data"
    start_and_stop(data, starts)
    with serving(data) as served:
        audience = served.url.removeprefix("http://")
        async with tampering_proxy(served.url, mode) as proxy:
            line = await trio.to_thread.run_sync(failing_step, proxy, None, audience)
    assert line.startswith(step) and why in line


async def test_a_log_that_pages_on_and_on_fails_instead_of_hanging(tmp_path: Path) -> None:
    """A gateway that serves a full page for every ``start`` never ends the listing: the
    verifier stops reading once the log holds more entries than its signed head."""
    data = tmp_path / "data"
    with serving(data) as served:
        audience = served.url.removeprefix("http://")
        async with tampering_proxy(served.url, "endless") as proxy:
            result = await trio.to_thread.run_sync(
                lambda: cli(data, "verify", proxy, "--allow-demo", "--audience", audience)
            )
    assert result.returncode == 1, result.stdout + result.stderr
    failed = result.stdout.strip().splitlines()[-2]
    assert failed.startswith("✗ (8) startup log") and "more than the 1 entries" in failed


async def test_a_member_of_the_wrong_type_fails_its_step(tmp_path: Path) -> None:
    """Malformed JSON from a gateway is a failed step, not a traceback: a ``null`` where
    the signed checkpoint belongs has no string methods (an AttributeError, not a
    TypeError) and must still fail step 8."""
    with serving(tmp_path / "data") as served:
        audience = served.url.removeprefix("http://")
        async with tampering_proxy(served.url, "null-checkpoint") as proxy:
            line = await trio.to_thread.run_sync(failing_step, proxy, None, audience)
    assert line.startswith("(8) startup log: AttributeError"), line
