"""The PostgreSQL schema, as numbered migrations run once per database by whichever
replica opens it first.

Migration 1 is SQLite's schema in its final shape (:mod:`.migrations` up to 11), with
the same tables, columns, constraints and indexes, in PostgreSQL's types: BIGINT for
money and counts, DOUBLE PRECISION for times, BOOLEAN for flags, BYTEA for blobs,
identity columns for the ledger's and activity's ids. The key generation is bumped by
plpgsql triggers that, like SQLite's ``WHEN`` clauses, skip a write of the same values
(``IS DISTINCT FROM``). A later change is a new migration at the end, never an edit.

Several replicas may start at once on an empty database: :func:`migrate` runs under a
session advisory lock, so one creates the schema while the others wait for it, then
find it done. ``schema_migrations`` holds the version; a database newer than this build
is refused (:class:`~saferouter.errors.StorageError`) rather than misread.
"""

from __future__ import annotations

from typing import Any

from ..errors import StorageError

# pg_advisory_lock's key: any constant no other program on the database uses
# (the bytes of "saferout", read as a signed 64-bit integer)
MIGRATION_LOCK = int.from_bytes(b"saferout", "big", signed=True)

MIGRATIONS: tuple[str, ...] = (
    # 1: SQLite's schema after its migration 11
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at DOUBLE PRECISION NOT NULL,
        last_used_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        metered BOOLEAN NOT NULL DEFAULT FALSE,
        balance_micro_usd BIGINT NOT NULL DEFAULT 0,
        reserved_micro_usd BIGINT NOT NULL DEFAULT 0,
        rpm_limit BIGINT,
        tpm_limit BIGINT
    );
    CREATE TABLE ledger (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(id),
        kind TEXT NOT NULL CHECK (
            kind IN ('topup', 'reserve', 'release', 'charge', 'overrun', 'metering')),
        amount_micro_usd BIGINT NOT NULL,
        request_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (request_id, kind)
    );
    CREATE INDEX ledger_key ON ledger (key_id);
    CREATE INDEX ledger_overrun ON ledger (kind) WHERE kind = 'overrun';
    CREATE TABLE activity (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        key_id TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        served_model TEXT,
        provider TEXT,
        original_model TEXT,
        status BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        latency_ms DOUBLE PRECISION,
        ttfb_ms DOUBLE PRECISION,
        prompt_tokens BIGINT NOT NULL DEFAULT 0,
        completion_tokens BIGINT NOT NULL DEFAULT 0,
        cached_tokens BIGINT NOT NULL DEFAULT 0,
        reasoning_tokens BIGINT NOT NULL DEFAULT 0,
        cost_micro_usd BIGINT NOT NULL DEFAULT 0,
        streamed BOOLEAN NOT NULL DEFAULT FALSE,
        estimated BOOLEAN NOT NULL DEFAULT FALSE,
        error_type TEXT,
        overrun_micro_usd BIGINT NOT NULL DEFAULT 0,
        byok BOOLEAN NOT NULL DEFAULT FALSE,
        UNIQUE (request_id, attempt)
    );
    CREATE INDEX activity_time ON activity (created_at);
    CREATE INDEX activity_key_time ON activity (key_id, created_at);
    CREATE TABLE rate_windows (
        key_id TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        requests BIGINT NOT NULL DEFAULT 0,
        tokens BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, window_start)
    );
    CREATE TABLE log_entries (
        log TEXT NOT NULL,
        idx BIGINT NOT NULL,
        body BYTEA,
        leaf_hash BYTEA,
        key_id TEXT,
        request_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (log, idx)
    );
    CREATE INDEX log_entries_key ON log_entries (log, key_id, idx);
    CREATE INDEX log_entries_pending ON log_entries (log, idx) WHERE body IS NULL;
    CREATE TABLE log_nodes (
        log TEXT NOT NULL,
        level BIGINT NOT NULL CHECK (level >= 0),
        idx BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (log, level, idx)
    );
    CREATE TABLE receipts (
        receipt_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'lost')),
        log_index BIGINT,
        signature BYTEA,
        audit_sample BOOLEAN NOT NULL DEFAULT FALSE,
        owner TEXT,
        log TEXT NOT NULL DEFAULT 'receipts'
    );
    CREATE INDEX receipts_pending ON receipts (state) WHERE state = 'pending';
    CREATE INDEX receipts_sampled ON receipts (log_index) WHERE audit_sample;
    CREATE TABLE byok_keys (
        key_id TEXT NOT NULL REFERENCES keys(id),
        provider TEXT NOT NULL,
        sealed_key BYTEA NOT NULL,
        sealed_to TEXT NOT NULL,
        measurement TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        fallback BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key_id, provider)
    );
    CREATE TABLE leases (
        owner TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE reservations (
        request_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(id),
        amount_micro_usd BIGINT NOT NULL CHECK (amount_micro_usd > 0),
        owner TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX reservations_owner ON reservations (owner);
    CREATE TABLE log_heads (
        log TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        checkpoint TEXT NOT NULL,
        published_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE replicas (
        identity TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE key_generation (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        generation BIGINT NOT NULL
    );
    INSERT INTO key_generation (id, generation) VALUES (1, 0);
    CREATE FUNCTION bump_key_generation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE key_generation SET generation = generation + 1;
        RETURN NULL;
    END $$;
    CREATE TRIGGER key_generation_insert_delete AFTER INSERT OR DELETE ON keys
        FOR EACH ROW EXECUTE FUNCTION bump_key_generation();
    CREATE TRIGGER key_generation_update AFTER UPDATE ON keys FOR EACH ROW
        WHEN ((OLD.id, OLD.name, OLD.prefix, OLD.key_hash, OLD.role, OLD.created_at,
               OLD.revoked_at, OLD.metered, OLD.rpm_limit, OLD.tpm_limit)
            IS DISTINCT FROM (NEW.id, NEW.name, NEW.prefix, NEW.key_hash, NEW.role,
               NEW.created_at, NEW.revoked_at, NEW.metered, NEW.rpm_limit, NEW.tpm_limit))
        EXECUTE FUNCTION bump_key_generation();
    CREATE TRIGGER key_generation_byok_insert_delete AFTER INSERT OR DELETE ON byok_keys
        FOR EACH ROW EXECUTE FUNCTION bump_key_generation();
    CREATE TRIGGER key_generation_byok_update AFTER UPDATE ON byok_keys FOR EACH ROW
        WHEN (OLD IS DISTINCT FROM NEW)
        EXECUTE FUNCTION bump_key_generation();
    """,
    # 2: SQLite's 13 (issue 15): each attempt's API, response id, finish reason, calling
    # app, routing note and cache-write tokens; the lookup by response id
    """
    ALTER TABLE activity ADD COLUMN api TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE activity ADD COLUMN response_id TEXT;
    ALTER TABLE activity ADD COLUMN finish_reason TEXT;
    ALTER TABLE activity ADD COLUMN app_title TEXT;
    ALTER TABLE activity ADD COLUMN app_referer TEXT;
    ALTER TABLE activity ADD COLUMN note TEXT;
    ALTER TABLE activity ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX activity_response ON activity (response_id, key_id)
        WHERE response_id IS NOT NULL;
    """,
)


def migrate(connection: Any) -> int:
    """Bring the database on ``connection`` (a psycopg connection in autocommit mode)
    to the newest schema; the version it was at. Blocks while another replica migrates
    (the advisory lock), then finds its work done."""
    connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with connection.transaction():
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL)"
            )
            row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
            version = int(row[0] or 0)
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database schema version {version} is newer than this build knows "
                    f"({len(MIGRATIONS)})"
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                connection.execute(migration)  # several statements: no parameters
                connection.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        return version
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
