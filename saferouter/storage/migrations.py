"""The SQLite schema, as numbered migrations: migration N brings ``PRAGMA user_version``
from N-1 to N, inside one transaction (:meth:`SQLiteStore._migrate`). A migration is
never edited once released; a change is a new one at the end. Most are SQL; one that
must compute (hash) is a function of the connection."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from .logs import rebuild_trees
from .replicas import log_name
from .sql import Db

Migration = str | Callable[[Db], None]

LEGACY_LOGS = ("startup", "receipts")  # their names before each replica had its own


def name_logs_by_identity(db: Db) -> None:
    """Migration 12 (issue 14): the logs of the one gateway before replicas become that
    replica's own — ``startup`` and ``receipts`` are renamed ``<log>/<identity>``
    (:func:`.replicas.log_name`), in the entries, the tree nodes and the
    receipts naming them. The identity is the one of the newest startup entry (every
    entry names its signer's; the gateway signing now is the one that started last). A
    database with no startup entry naming an identity changes nothing (the logs keep
    their old names, which no replica signs again). Reads rows by position: migrations
    run on a plain cursor."""
    row = db.execute(
        "SELECT body FROM log_entries WHERE log = 'startup' AND body IS NOT NULL "
        "ORDER BY idx DESC LIMIT 1"
    ).fetchone()
    try:
        identity = bytes.fromhex(json.loads(bytes(row[0]))["spec"]["identity"])
    except (TypeError, ValueError, KeyError):  # no row, or not an entry of ours
        return
    if len(identity) != 32:  # not an Ed25519 public key
        return
    for kind in LEGACY_LOGS:
        for table in ("log_entries", "log_nodes", "receipts"):
            db.execute(
                f"UPDATE {table} SET log = ? WHERE log = ?",  # noqa: S608 (names above)
                (log_name(kind, identity), kind),
            )


MIGRATIONS: tuple[Migration, ...] = (
    # 1: API keys
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    """,
    # 2: credits ledger, activity log, rate-limit windows
    """
    ALTER TABLE keys ADD COLUMN metered INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN balance_micro_usd INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN reserved_micro_usd INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN rpm_limit INTEGER;
    ALTER TABLE keys ADD COLUMN tpm_limit INTEGER;
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(id),
        kind TEXT NOT NULL CHECK (kind IN ('topup', 'reserve', 'release', 'charge')),
        amount_micro_usd INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (request_id, kind)
    );
    CREATE INDEX ledger_key ON ledger (key_id);
    CREATE TABLE activity (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        created_at REAL NOT NULL,
        key_id TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        served_model TEXT,
        provider TEXT,
        original_model TEXT,
        status INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        latency_ms REAL,
        ttfb_ms REAL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micro_usd INTEGER NOT NULL DEFAULT 0,
        streamed INTEGER NOT NULL DEFAULT 0,
        estimated INTEGER NOT NULL DEFAULT 0,
        error_type TEXT,
        UNIQUE (request_id, attempt)
    );
    CREATE INDEX activity_time ON activity (created_at);
    CREATE INDEX activity_key_time ON activity (key_id, created_at);
    CREATE TABLE rate_windows (
        key_id TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, window_start)
    );
    """,
    # 3: transparency (startup) and audit logs
    """
    CREATE TABLE log_entries (
        log TEXT NOT NULL,
        idx INTEGER NOT NULL,
        body BLOB,
        leaf_hash BLOB,
        key_id TEXT,
        request_id TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (log, idx)
    );
    CREATE INDEX log_entries_key ON log_entries (log, key_id, idx);
    """,
    # 4 (privacy): audit entries filled before salted commitments carried the plain
    # SHA-256 of the request and response bytes, which confirms a guessed prompt. Those
    # two fields are removed from the stored bodies (and the signature, which no longer
    # covers them). The leaf hashes stay: every checkpoint, root and consistency proof
    # is unchanged; only such an old entry's own inclusion can no longer be checked
    # from its body, the price of no longer publishing what its hashes gave away.
    """
    UPDATE log_entries SET body = CAST(json_set(json_remove(CAST(body AS TEXT),
        '$.spec.request_sha256', '$.spec.response_sha256', '$.signature'),
        '$.spec.withdrawn', 'unsalted request_sha256 and response_sha256') AS BLOB)
    WHERE log = 'audit' AND body IS NOT NULL
        AND json_extract(CAST(body AS TEXT), '$.spec.request_sha256') IS NOT NULL
    """,
    # 5: overruns (a provider billing beyond the reservation) and the switch to metered
    # are ledger entries; SQLite cannot widen a CHECK in place, so the table is rebuilt.
    """
    CREATE TABLE ledger_5 (
        id INTEGER PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(id),
        kind TEXT NOT NULL CHECK (
            kind IN ('topup', 'reserve', 'release', 'charge', 'overrun', 'metering')),
        amount_micro_usd INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (request_id, kind)
    );
    INSERT INTO ledger_5 SELECT id, key_id, kind, amount_micro_usd, request_id, created_at
        FROM ledger;
    DROP TABLE ledger;
    ALTER TABLE ledger_5 RENAME TO ledger;
    CREATE INDEX ledger_key ON ledger (key_id);
    CREATE INDEX ledger_overrun ON ledger (kind) WHERE kind = 'overrun';
    ALTER TABLE activity ADD COLUMN overrun_micro_usd INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: the key generation, so workers can cache keys and still see every revocation
    # (Store.key_generation). Triggers bump it on any change to the columns a cached key
    # holds, by whichever connection or process writes; balance_micro_usd,
    # reserved_micro_usd and last_used_at move with traffic and are left out. The WHEN
    # clauses skip updates that write the same values (an idempotent revoke, a rename
    # to the same name), so they do not empty every worker's cache for nothing.
    """
    CREATE TABLE key_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT INTO key_generation (id, generation) VALUES (1, 0);
    CREATE TRIGGER key_generation_insert AFTER INSERT ON keys BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER key_generation_delete AFTER DELETE ON keys BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER key_generation_update AFTER UPDATE OF
        id, name, prefix, key_hash, role, created_at, revoked_at, metered, rpm_limit, tpm_limit
        ON keys
        WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.prefix IS NOT NEW.prefix
            OR OLD.key_hash IS NOT NEW.key_hash OR OLD.role IS NOT NEW.role
            OR OLD.created_at IS NOT NEW.created_at OR OLD.revoked_at IS NOT NEW.revoked_at
            OR OLD.metered IS NOT NEW.metered OR OLD.rpm_limit IS NOT NEW.rpm_limit
            OR OLD.tpm_limit IS NOT NEW.tpm_limit
    BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    """,
    # 7: receipts, one per admitted request (the signed bytes are the ``receipts`` log's
    # entry; the row says whose it is and whether its response has ended). Keyed by the
    # receipt id alone (WITHOUT ROWID: one B-tree, not a table and an index beside it).
    # The audit log's old rows stay where they are: the audit sampler is now a view of
    # this table.
    """
    CREATE TABLE receipts (
        receipt_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'lost')),
        log_index INTEGER,
        signature BLOB,
        audit_sample INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX receipts_pending ON receipts (state) WHERE state = 'pending';
    CREATE INDEX receipts_sampled ON receipts (log_index) WHERE audit_sample;
    """,
    # 8: each log's Merkle tree, stored (storage.logs): its leaves and every perfect
    # subtree above them, so heads and proofs read O(log n) nodes, not every leaf. Pending (audit)
    # entries get an index of their own, so finding the first gap is a lookup, not a scan.
    """
    CREATE TABLE log_nodes (
        log TEXT NOT NULL,
        level INTEGER NOT NULL CHECK (level >= 0),
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (log, level, idx)
    ) WITHOUT ROWID;
    CREATE INDEX log_entries_pending ON log_entries (log, idx) WHERE body IS NULL;
    """,
    # 9: the stored trees of the logs written before 8
    rebuild_trees,
    # 10: bring your own provider key (issue 13). Only the sealed box is kept, one per
    # (key, provider). A key's BYOK keys are part of what a cached key holds
    # (KeyIdentity.byok), so every change to them moves the key generation, by any
    # writer, as 6's triggers do for the keys table (and, like them, not on a write of
    # the same values). Each activity entry says whether the key's own provider key
    # served it.
    """
    CREATE TABLE byok_keys (
        key_id TEXT NOT NULL REFERENCES keys(id),
        provider TEXT NOT NULL,
        sealed_key BLOB NOT NULL,
        sealed_to TEXT NOT NULL,
        measurement TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        fallback INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (key_id, provider)
    ) WITHOUT ROWID;
    CREATE TRIGGER key_generation_byok_insert AFTER INSERT ON byok_keys BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER key_generation_byok_delete AFTER DELETE ON byok_keys BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER key_generation_byok_update AFTER UPDATE ON byok_keys
        WHEN OLD.key_id IS NOT NEW.key_id OR OLD.provider IS NOT NEW.provider
            OR OLD.sealed_key IS NOT NEW.sealed_key OR OLD.sealed_to IS NOT NEW.sealed_to
            OR OLD.measurement IS NOT NEW.measurement OR OLD.fingerprint IS NOT NEW.fingerprint
            OR OLD.fallback IS NOT NEW.fallback OR OLD.created_at IS NOT NEW.created_at
            OR OLD.updated_at IS NOT NEW.updated_at
    BEGIN
        UPDATE key_generation SET generation = generation + 1;
    END;
    ALTER TABLE activity ADD COLUMN byok INTEGER NOT NULL DEFAULT 0;
    """,
    # 11: replicas (issue 14). Every open reservation is a row of ``reservations``, and
    # every pending receipt names its ``owner``: the serving process that admitted it,
    # which holds a lease (``leases``) while it lives. Recovery releases what is held by
    # an owner whose lease has lapsed (storage.leases), never a live process's. The
    # reservations open now belonged to a run from before leases: owner NULL, released
    # by the next recovery. Each replica (a TEE of its own identity) keeps its own
    # startup and receipt logs in the shared database: ``receipts.log`` says which log
    # a receipt is in, ``log_heads`` holds each log's newest head signed by its replica
    # (so any replica can prove another's receipt), ``replicas`` who has served.
    """
    CREATE TABLE leases (
        owner TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE reservations (
        request_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(id),
        amount_micro_usd INTEGER NOT NULL CHECK (amount_micro_usd > 0),
        owner TEXT,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX reservations_owner ON reservations (owner);
    INSERT INTO reservations (request_id, key_id, amount_micro_usd, owner, created_at)
        SELECT request_id, key_id, -amount_micro_usd, NULL, created_at FROM ledger r
        WHERE kind = 'reserve' AND amount_micro_usd < 0 AND NOT EXISTS (
            SELECT 1 FROM ledger x WHERE x.request_id = r.request_id AND x.kind = 'release');
    ALTER TABLE receipts ADD COLUMN owner TEXT;
    ALTER TABLE receipts ADD COLUMN log TEXT NOT NULL DEFAULT 'receipts';
    CREATE TABLE log_heads (
        log TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        checkpoint TEXT NOT NULL,
        published_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE replicas (
        identity TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        last_seen REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 12: each replica's logs are named by its identity: the single gateway's become its own
    name_logs_by_identity,
    # 13: every API clients speak (issue 15). Each attempt says which API the client spoke
    # (old rows were chat completions), the upstream's id of the response it served and
    # why it finished, the calling app (OpenRouter's X-Title and HTTP-Referer), routing's
    # note, and the prompt tokens written to the provider's cache. A request is looked up
    # by its response id (GET /api/v1/generation, a Responses follow-up's pin): the index
    # leads with it, so an admin's lookup (no key) uses it too, and holds only the rows
    # that have one (serving attempts).
    """
    ALTER TABLE activity ADD COLUMN api TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE activity ADD COLUMN response_id TEXT;
    ALTER TABLE activity ADD COLUMN finish_reason TEXT;
    ALTER TABLE activity ADD COLUMN app_title TEXT;
    ALTER TABLE activity ADD COLUMN app_referer TEXT;
    ALTER TABLE activity ADD COLUMN note TEXT;
    ALTER TABLE activity ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX activity_response ON activity (response_id, key_id)
        WHERE response_id IS NOT NULL;
    """,
)


def migration_statements(script: str) -> list[str]:
    """The statements of a migration script, one per ``execute``. Split where SQLite
    says a statement is complete, not at every ``;``: a trigger's body holds several.
    (``executescript`` would commit the migration's transaction first.)"""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"an incomplete statement ends the migration: {pending.strip()!r}")
    return statements
