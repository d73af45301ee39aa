"""The BYOK public key of real `saferouter serve` processes: a claim every quote binds,
in every startup entry and GET /attestation, the same in every worker, one per build."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path

import httpx
import nacl.public

from saferouter.canonical import canonical_json
from saferouter.tee.abi import parse_report

from ..processes import free_port, serving


def byok_files(data: Path) -> list[Path]:
    return sorted(data.glob("byok-*.key"))


def public_of(path: Path) -> str:
    """The public half of a demo-mode key file, computed here from its bytes."""
    return bytes(nacl.public.PrivateKey(path.read_bytes()).public_key).hex()


def startup_specs(client: httpx.Client) -> list[dict[str, object]]:
    entries = client.get("/attestation/transparency").json()["data"]
    return [json.loads(base64.b64decode(e["body"]))["spec"] for e in entries]


def test_the_claim_is_bound_by_report_data_and_logged_at_every_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    nonce, port = secrets.token_bytes(32), free_port()  # the port: part of the audience
    with (
        serving(data, port=port) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        quote = client.post("/attestation/quote", json={"nonce": nonce.hex()}).json()
        status = client.get("/attestation").json()
        specs = startup_specs(client)
    (key_file,) = byok_files(data)
    assert key_file.name == f"byok-{status['measurement'][:16]}.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    claimed = quote["claims"]["byok_public_key"]
    assert claimed == public_of(key_file)  # the private half is the data dir's file
    report = parse_report(bytes.fromhex(quote["report"]))
    assert report.report_data == hashlib.sha512(canonical_json(quote["claims"])).digest()
    assert status["byok_public_key"] == claimed
    assert status["latest_startup"]["byok_public_key"] == claimed
    assert [s["byok_public_key"] for s in specs] == [claimed]
    with serving(data, port=port) as served, httpx.Client(base_url=served.url) as client:
        again = client.get("/attestation").json()
        specs = startup_specs(client)
    # a restart of the same build: the same key pair, so keys sealed to it still open
    assert again["byok_public_key"] == claimed
    assert [s["byok_public_key"] for s in specs] == [claimed, claimed]


def test_another_configuration_is_another_build_with_its_own_key(tmp_path: Path) -> None:
    """The audience is part of the measurement: another one makes another key pair, and
    the first build's file stays for when that build runs again."""
    data = tmp_path / "data"
    with serving(data) as served:
        first = httpx.get(served.url + "/attestation", timeout=30).json()
    env = {"SAFEROUTER_AUDIENCE": "gateway.example"}
    with serving(data, env=env) as served:
        second = httpx.get(served.url + "/attestation", timeout=30).json()
    assert first["measurement"] != second["measurement"]
    assert first["byok_public_key"] != second["byok_public_key"]
    assert {p.name: public_of(p) for p in byok_files(data)} == {
        f"byok-{first['measurement'][:16]}.key": first["byok_public_key"],
        f"byok-{second['measurement'][:16]}.key": second["byok_public_key"],
    }


def test_two_workers_serve_the_same_byok_public_key(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--workers", "2") as served:
        keys_by_worker: dict[int, set[str]] = {}
        deadline = time.monotonic() + 60
        while len(keys_by_worker) < 2 and time.monotonic() < deadline:
            # a new connection each time (the kernel spreads them over the workers); a
            # quote from each worker the first time it answers (quotes are rate limited)
            with httpx.Client(base_url=served.url, timeout=10) as client:
                worker = client.get("/health").json()["worker"]
                first_answer = worker not in keys_by_worker
                seen = keys_by_worker.setdefault(worker, set())
                seen.add(client.get("/attestation").json()["byok_public_key"])
                if first_answer:
                    quote = client.post("/attestation/quote", json={"nonce": "00" * 16}).json()
                    seen.add(quote["claims"]["byok_public_key"])
    assert len(keys_by_worker) == 2, keys_by_worker
    assert len(set().union(*keys_by_worker.values())) == 1, keys_by_worker
