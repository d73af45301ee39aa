"""The replica section's arithmetic (bench/scaling.py, issue 14 §6): the ratios that say
what a second replica gains and what PostgreSQL costs against SQLite, the latency each
store adds to the direct call, and the table that prints them."""

from __future__ import annotations

from typing import Any

from bench import scaling

THROUGHPUT = {
    "floor": {"rps": 500.0, "cpu_ms_per_request": 1.6},
    "sqlite_1": {"rps": 1000.0, "cpu_ms_per_request": 0.8},
    "sqlite_2": {"rps": 1200.0, "cpu_ms_per_request": 0.9, "served_share": [0.5, 0.5]},
    "sqlite_1_2keys": {"rps": 1000.0, "cpu_ms_per_request": 0.8},
    "sqlite_2_2keys": {"rps": 1100.0, "cpu_ms_per_request": 0.9},
    "postgresql_1": {
        "rps": 800.0,
        "cpu_ms_per_request": 0.9,
        "database_cpu_ms_per_request": 0.3,
    },
    "postgresql_2": {
        "rps": 400.0,
        "errors": 3,
        "wrk_answers": 2000,
        "cpu_ms_per_request": 1.0,
        "database_cpu_ms_per_request": 0.35,
        "served_share": [0.52, 0.48],
    },
    "postgresql_1_2keys": {
        "rps": 800.0,
        "cpu_ms_per_request": 0.9,
        "database_cpu_ms_per_request": 0.3,
    },
    "postgresql_2_2keys": {
        "rps": 1400.0,
        "cpu_ms_per_request": 1.0,
        "database_cpu_ms_per_request": 0.35,
    },
}
LATENCY = {
    "direct": {"p50_ms": 0.25, "p90_ms": 0.3},
    "floor": {"p50_ms": 1.25, "p90_ms": 1.5},
    "sqlite": {"p50_ms": 0.75, "p90_ms": 1.0},
    "postgresql": {"p50_ms": 1.75, "p90_ms": 2.5},
}


def section(throughput: dict[str, Any], latency: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "balancing": "two threads",
        "pinning": "pinned",
        "throughput": throughput,
        "latency": latency,
        "compared": scaling.compare(throughput, latency),
        **more,
    }


def test_each_store_is_compared_to_the_floor_to_itself_at_one_replica_and_to_sqlite() -> None:
    compared = scaling.compare(THROUGHPUT, LATENCY)
    assert compared["rps_to_floor"] == {
        "sqlite_1": 2.0,
        "sqlite_2": 2.4,
        "sqlite_1_2keys": 2.0,
        "sqlite_2_2keys": 2.2,
        "postgresql_1": 1.6,
        "postgresql_2": 0.8,
        "postgresql_1_2keys": 1.6,
        "postgresql_2_2keys": 2.8,
    }
    # per store and keys: one hot key, or a key per wrk thread
    assert compared["two_to_one"] == {
        "sqlite": 1.2,
        "sqlite_2keys": 1.1,
        "postgresql": 0.5,
        "postgresql_2keys": 1.75,
    }
    assert compared["postgresql_to_sqlite_rps"] == {
        "1": 0.8,
        "2": 0.33,
        "1_2keys": 0.8,
        "2_2keys": 1.27,
    }


def test_added_latency_is_over_the_direct_call_and_the_stores_difference_is_taken() -> None:
    added = scaling.compare(THROUGHPUT, LATENCY)["added_latency"]
    assert added["floor"] == {"added_p50_ms": 1.0, "added_p90_ms": 1.2}
    assert added["sqlite"] == {
        "added_p50_ms": 0.5,
        "added_p90_ms": 0.7,
        "added_p50_to_floor": 0.5,
    }
    assert added["postgresql"]["added_p50_ms"] == 1.5
    assert added["postgresql"]["added_p50_to_floor"] == 1.5
    difference = scaling.compare(THROUGHPUT, LATENCY)["postgresql_minus_sqlite"]
    assert difference == {"added_p50_ms": 1.0, "added_p90_ms": 1.5}


def test_a_store_not_measured_gets_no_ratio_and_empty_cells() -> None:
    throughput = {k: v for k, v in THROUGHPUT.items() if not k.startswith("postgresql")}
    latency = {k: v for k, v in LATENCY.items() if k != "postgresql"}
    compared = scaling.compare(throughput, latency)
    assert set(compared["two_to_one"]) == {"sqlite", "sqlite_2keys"}
    assert compared["postgresql_to_sqlite_rps"] == {}
    assert "postgresql_minus_sqlite" not in compared
    skipped = "not measured: no PostgreSQL binaries"
    table = scaling.markdown(section(throughput, latency, postgresql_skipped=skipped))
    assert f"PostgreSQL {skipped}." in table
    assert "Answers but a 2xx" not in table
    assert "| PostgreSQL, one key |  |  |  |" in table
    assert "PostgreSQL / SQLite" not in table


def test_the_table_gives_every_figure_with_its_ratio() -> None:
    table = scaling.markdown(section(THROUGHPUT, LATENCY))
    assert table.startswith("Replicas on one database: two threads; pinned.\n")
    # an arm's errors (PostgreSQL's 503 to a write that kept losing conflicts) are said
    assert "\nAnswers but a 2xx (all rounds): postgresql_2 3 of 2000.\n" in table
    assert "| floor (one process) | 500 | | |" in table
    assert "| SQLite, one key | 1,000 (2.00× floor) | 1,200 (2.40× floor) | 1.20× |" in table
    assert "| PostgreSQL, one key | 800 (1.60× floor) | 400 (0.80× floor) | 0.50× |" in table
    pg_keys = (
        "| PostgreSQL, a key per wrk thread | 800 (1.60× floor) | 1,400 (2.80× floor) | 1.75× |"
    )
    assert pg_keys in table
    assert "| PostgreSQL / SQLite, one key | 0.80× | 0.33× | |" in table
    assert "| PostgreSQL / SQLite, a key per wrk thread | 0.80× | 1.27× | |" in table
    # the database's CPU beside the gateways' where it runs apart (PostgreSQL)
    assert "| SQLite, one key | 0.800 | 0.900 |" in table
    assert "| PostgreSQL, one key | 0.900 + 0.300 | 1.000 + 0.350 |" in table
    assert "| SQLite | 0.75 | 1.00 | 0.500 | 0.700 | 0.50× |" in table
    assert "| PostgreSQL − SQLite | | | +1.000 | +1.500 | |" in table
