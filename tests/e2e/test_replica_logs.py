"""Issue 14 point 4 on real processes: two `saferouter serve` replicas, each with its
own data dir (so its own identity), sharing one database. Each signs its own logs;
`/attestation` names the replica that answered and lists the other; a receipt of a
request served by one is served by the other against the first one's published head
(409 until it has published one covering it), and verifies; `saferouter verify` passes
against each in turn with one state file."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from saferouter.translog import merkle, note
from saferouter.translog.entry import verify_entry
from saferouter.translog.receipt import receipt_leaf_hash
from saferouter.verify.client import run_checks

from ..processes import Served, cli, new_key, serving

AUDIENCE = "replicas.test"  # replicas behind one load balancer share its name
# the heartbeat's own publication is not waited for: each step below makes its own
ENV = {"SAFEROUTER_AUDIENCE": AUDIENCE, "SAFEROUTER_LEASE_SECONDS": "600"}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database the replicas share: one SQLite file, or a fresh PostgreSQL one."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'shared.db'}"


@contextmanager
def two_replicas(shared: str, tmp_path: Path, **env: str) -> Iterator[tuple[Served, Served, str]]:
    with ExitStack() as stack:
        a = stack.enter_context(serving(tmp_path / "a", "--database", shared, env=ENV | env))
        b = stack.enter_context(serving(tmp_path / "b", "--database", shared, env=ENV | env))
        yield a, b, shared


def chat(served: Served, secret: str) -> str:
    """One request through the openai SDK; its receipt id."""
    with openai.OpenAI(base_url=served.url + "/v1", api_key=secret, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": "hi"}]
        )
    return raw.headers["x-saferouter-receipt"]


def get(served: Served, path: str, secret: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.get(served.url + path, headers=headers, timeout=30)


def startup_bodies(served: Served) -> list[bytes]:
    data = get(served, "/attestation/transparency").json()["data"]
    return [base64.b64decode(e["body"]) for e in data]


def test_two_replicas_on_one_database_each_sign_their_own_logs(
    database: str, tmp_path: Path
) -> None:
    with two_replicas(database, tmp_path) as (a, b, shared):
        status_a, status_b = get(a, "/attestation").json(), get(b, "/attestation").json()
        me_a, me_b = status_a["replica"], status_b["replica"]
        assert me_a == status_a["identity"] != me_b == status_b["identity"]
        # each names itself, and lists the other as read from the shared database
        assert [r["identity"] for r in status_a["replicas"]] == [me_b]
        assert [r["identity"] for r in status_b["replicas"]] == [me_a]
        assert "read from that database" in status_a["replicas_note"]
        (listed_b,) = status_a["replicas"]
        assert base64.b64decode(listed_b["latest_startup"]["body"]) == startup_bodies(b)[-1]
        verifier_b = note.ed25519_verifier(f"{AUDIENCE}/startup", bytes.fromhex(me_b))
        assert (
            note.verify_checkpoint(listed_b["startup_head"]["checkpoint"], [verifier_b]).size == 1
        )
        # each startup log holds only its own entries, signed by its own identity
        for served, me in ((a, me_a), (b, me_b)):
            (body,) = startup_bodies(served)
            assert verify_entry(body, bytes.fromhex(me))["spec"]["identity"] == me

        secret = new_key(tmp_path / "a", "--name", "user", "--database", shared)
        receipt_id = chat(a, secret)
        # B cannot sign A's head: until A publishes one covering the receipt, it waits
        pending = get(b, f"/v1/receipts/{receipt_id}", secret)
        assert pending.status_code == 409, pending.text
        error = pending.json()["error"]
        assert error["code"] == "receipt_pending" and me_a in error["message"]
        # A serves it at once, against a head it signs now (and so publishes)
        assert get(a, f"/v1/receipts/{receipt_id}", secret).status_code == 200
        assert get(b, "/attestation/receipts/head").json()["tree_size"] == 0  # B's own: none

        served = get(b, f"/v1/receipts/{receipt_id}", secret)
        assert served.status_code == 200, served.text
        document: dict[str, Any] = served.json()
        assert document["signer"] == document["receipt"]["identity"] == me_a
        # inclusion against A's published head, under A's key
        verifier_a = note.ed25519_verifier(f"{AUDIENCE}/receipts", bytes.fromhex(me_a))
        checkpoint = note.verify_checkpoint(document["checkpoint"], [verifier_a])
        merkle.verify_inclusion(
            document["log_index"],
            checkpoint.size,
            receipt_leaf_hash(document["receipt"]),
            [bytes.fromhex(h) for h in document["inclusion_proof"]],
            checkpoint.root_hash,
        )
        path = tmp_path / "receipt.json"
        path.write_text(json.dumps(document))
        checked = cli(
            tmp_path, "verify-receipt", str(path), "--gateway", b.url,
            "--allow-demo", "--audience", AUDIENCE,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "VERIFIED (signed by another replica" in checked.stdout
        assert "its attestation is NOT what this verification proved" in checked.stdout

        # `saferouter verify` checks the replica it is connected to, each in turn, with
        # one state file: landing on the other replica is not a fork alarm
        state = tmp_path / "state.json"
        for served_by, other in ((a, me_b), (b, me_a), (a, me_b)):
            result = run_checks(served_by.url, state_path=state, allow_demo=True, audience=AUDIENCE)
            assert result.passed, result.steps
            history, _receipts, peers = result.steps[-3:]
            assert peers.name == "replicas" and other[:16] in peers.detail
        assert "consistent with size 1 seen before" in history.detail  # A, remembered


def test_a_dead_replicas_receipts_stay_provable_by_its_published_head(tmp_path: Path) -> None:
    """The heartbeat publishes each replica's heads with no one asking it: a receipt A
    signed is served by B once A's next round has run, and still after A is SIGKILLed."""
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    with two_replicas(shared, tmp_path, SAFEROUTER_LEASE_SECONDS="1") as (a, b, _):
        me_a = get(a, "/attestation").json()["replica"]
        secret = new_key(tmp_path / "b", "--name", "user", "--database", shared)
        receipt_id = chat(a, secret)
        deadline = time.monotonic() + 60  # a round every third of a second; generous
        while (served := get(b, f"/v1/receipts/{receipt_id}", secret)).status_code == 409:
            assert time.monotonic() < deadline, served.text
            time.sleep(0.1)
        assert served.status_code == 200, served.text
        a.process.kill()
        a.process.wait()
        again = get(b, f"/v1/receipts/{receipt_id}", secret)
        assert again.status_code == 200 and again.json()["signer"] == me_a
        assert again.json()["tree_size"] >= 1
        (listed,) = get(b, "/attestation").json()["replicas"]
        assert listed["identity"] == me_a and listed["startup_head"]["tree_size"] == 1


def samples(served: Served, secret: str, query: str = "") -> httpx.Response:
    return get(served, "/v1/audit/samples" + query, secret)


def test_audit_samples_are_paged_per_replica_log(database: str, tmp_path: Path) -> None:
    """Each replica's receipt log numbers its entries from 0: a page is one replica's
    (``replica``: this one's by default), and ``start`` an index in that log."""
    with two_replicas(database, tmp_path, SAFEROUTER_AUDIT_RATE="1") as (a, b, shared):
        me_a, me_b = (
            get(a, "/attestation").json()["replica"],
            get(b, "/attestation").json()["replica"],
        )
        secret = new_key(tmp_path / "a", "--name", "user", "--database", shared)
        by_a = [chat(a, secret), chat(a, secret)]
        by_b = [chat(b, secret)]

        def page(query: str) -> list[tuple[int, str, str, str]]:
            answer = samples(b, secret, query)
            assert answer.status_code == 200, answer.text
            return [
                (s["index"], s["signer"], s["log"], s["receipt_id"]) for s in answer.json()["data"]
            ]

        assert page("") == [(0, me_b, f"receipts/{me_b}", by_b[0])]  # B's own log
        assert samples(b, secret).json()["replica"] == me_b
        log_a = f"receipts/{me_a}"
        assert page(f"?replica={me_a}") == [(0, me_a, log_a, by_a[0]), (1, me_a, log_a, by_a[1])]
        assert page(f"?replica={me_a.upper()}&start=1") == [(1, me_a, log_a, by_a[1])]
        assert page(f"?replica={me_a}&start=1&limit=1") == page(f"?replica={me_a}&start=1")

        unknown = samples(b, secret, "?replica=" + "0" * 64)
        assert unknown.status_code == 404, unknown.text
        error = unknown.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "replica_not_found",
            "replica",
            "invalid_request_error",
        )
        bad = samples(b, secret, "?replica=me")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "replica"
