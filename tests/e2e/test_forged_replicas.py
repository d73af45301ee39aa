"""Rows forged in the shared database (issue 14): the replicas' table and the published
heads are written by every replica and protected by no TEE, so whoever can write the
database can write anything there. A replica's ``/attestation`` must still answer (it
is how a verifier reaches the replica's own, attested, evidence): a row that names no
identity is left out; one that does is listed as read, and the verifier does not take
its claims on trust."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from saferouter.translog.log import log_name
from saferouter.verify.client import run_checks

from ..processes import new_key, serving
from .replicas import SharedDb

ENV = {"SAFEROUTER_LEASE_SECONDS": "600"}
FORGED = "ab" * 32  # a well-formed identity no replica has
HEADLESS = "cd" * 32  # another, whose head claims entries its log does not have


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'shared.db'}"


def forge(database: str) -> None:
    with SharedDb(database) as db:
        for identity in ("not hex at all", "abc", "", FORGED, "AB" * 32, HEADLESS):
            db.rows(
                "INSERT INTO replicas (identity, started_at, last_seen) VALUES (?, ?, ?) "
                "RETURNING identity",
                (identity, 1.0, 2.0),
            )
        for identity in (FORGED, HEADLESS):
            db.rows(
                "INSERT INTO log_heads (log, size, checkpoint, published_at) "
                "VALUES (?, ?, ?, ?) RETURNING log",
                (log_name("startup", bytes.fromhex(identity)), 7, "forged\n", 3.0),
            )
        # FORGED's newest startup entry, which it never signed
        db.rows(
            "INSERT INTO log_entries (log, idx, body, leaf_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING idx",
            (log_name("startup", bytes.fromhex(FORGED)), 6, b"forged", b"\0" * 32, 3.0),
        )
        if isinstance(db._connection, sqlite3.Connection):  # (psycopg's is autocommit)
            db._connection.commit()


def test_forged_replica_rows_never_break_attestation_nor_pass_verification(
    database: str, tmp_path: Path
) -> None:
    with serving(tmp_path / "a", "--database", database, env=ENV) as served:
        forge(database)
        response = httpx.get(served.url + "/attestation", timeout=30)
        assert response.status_code == 200, response.text
        status = response.json()
        listed = {peer["identity"]: peer for peer in status["replicas"]}
        assert sorted(listed) == [FORGED, HEADLESS]  # only what names an identity
        assert listed[FORGED]["latest_startup"]["index"] == 6  # as read: not vouched for
        assert listed[HEADLESS]["latest_startup"] is None
        checked = run_checks(served.url, allow_demo=True)
        replicas_step = checked.steps[-1]
        assert replicas_step.name == "replicas"
        # an entry its listed identity did not sign fails the step, not the verifier
        assert not replicas_step.ok, replicas_step


def test_a_receipt_of_a_forged_replicas_log_is_an_error_not_a_500(
    database: str, tmp_path: Path
) -> None:
    """Another replica's receipt is proved against that replica's published head from
    the shared database; a head (forged, or of a log whose tree is incomplete) that
    its log's stored tree cannot prove gets a clear error, never a 500."""
    log = log_name("receipts", bytes.fromhex(FORGED))
    with serving(tmp_path / "a", "--database", database, env=ENV) as served:
        admin = new_key(tmp_path / "a", "--database", database, "--name", "x", "--admin")
        with SharedDb(database) as db:
            key_id = db.value("SELECT id FROM keys WHERE name = ?", ("x",))
            db.rows(
                "INSERT INTO log_entries (log, idx, body, leaf_hash, key_id, request_id, "
                "created_at) VALUES (?, 0, ?, ?, ?, 'req_forged', 1.0) RETURNING idx",
                (log, b"{}", b"\0" * 32, key_id),
            )
            db.rows(
                "INSERT INTO receipts (receipt_id, request_id, key_id, created_at, state, "
                "log_index, signature, log) VALUES ('rcpt_forged', 'req_forged', ?, 1.0, "
                "'done', 0, ?, ?) RETURNING receipt_id",
                (key_id, b"\0" * 64, log),
            )
            db.rows(
                "INSERT INTO log_heads (log, size, checkpoint, published_at) "
                "VALUES (?, 5, 'forged\n5\n', 3.0) RETURNING log",
                (log,),
            )
            if isinstance(db._connection, sqlite3.Connection):
                db._connection.commit()
        response = httpx.get(
            served.url + "/v1/receipts/rcpt_forged",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        assert response.status_code != 500 and response.status_code >= 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
