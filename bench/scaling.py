"""The replica section's arithmetic, free of I/O (issue 14 §6): from the figures
bench/replicas.py measured, the ratios that say what scaling out costs and gains — each
arm's requests/s to the floor's, 2 replicas to 1 per store, PostgreSQL to SQLite — the
latency each store adds to the direct call, and the markdown table.

Only ratios of figures from the same run mean anything across days (the machines change
speed several-fold), so every absolute figure is printed beside one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

STORES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
KEYS = {1: "one key", 2: "a key per wrk thread"}
Figures = Mapping[str, Mapping[str, Any]]


def series(store: str, keys: int = 1) -> str:
    """The name of ``store``'s arms loaded with ``keys`` keys (1: all connections on one
    key; 2: each of wrk's two threads on a key of its own)."""
    return store if keys == 1 else f"{store}_{keys}keys"


def shape(replicas: int, keys: int = 1) -> str:
    """``replicas`` servers loaded with ``keys`` keys, whatever the store."""
    return f"{replicas}" if keys == 1 else f"{replicas}_{keys}keys"


def arm(store: str, replicas: int, keys: int = 1) -> str:
    """The name of the throughput arm of ``replicas`` servers on ``store``, ``keys`` keys
    (``floor`` is the one-process reference)."""
    return f"{store}_{shape(replicas, keys)}"


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2) if denominator else float("inf")


def compare(throughput: Figures, latency: Figures) -> dict[str, Any]:
    """The ratios of the section. ``throughput`` holds an ``rps`` per arm (``floor`` and
    any of :func:`arm`'s names); ``latency`` a ``p50_ms`` and ``p90_ms`` per target
    (``direct``, ``floor`` and any store). A store that was not measured has no entries
    and gets no ratios."""
    rps = {name: figures["rps"] for name, figures in throughput.items()}
    out: dict[str, Any] = {
        "rps_to_floor": {n: _ratio(r, rps["floor"]) for n, r in rps.items() if n != "floor"},
        "two_to_one": {
            series(store, keys): _ratio(rps[arm(store, 2, keys)], rps[arm(store, 1, keys)])
            for store in STORES
            for keys in KEYS
            if arm(store, 1, keys) in rps and arm(store, 2, keys) in rps
        },
        "postgresql_to_sqlite_rps": {
            shape(n, keys): _ratio(rps[arm("postgresql", n, keys)], rps[arm("sqlite", n, keys)])
            for keys in KEYS
            for n in (1, 2)
            if arm("postgresql", n, keys) in rps and arm("sqlite", n, keys) in rps
        },
    }
    direct = latency["direct"]
    added = {
        target: {
            f"added_{pct}_ms": round(figures[f"{pct}_ms"] - direct[f"{pct}_ms"], 3)
            for pct in ("p50", "p90")
        }
        for target, figures in latency.items()
        if target != "direct"
    }
    for store in STORES:
        if store in added:
            floor_added = added["floor"]["added_p50_ms"]
            added[store]["added_p50_to_floor"] = _ratio(added[store]["added_p50_ms"], floor_added)
    out["added_latency"] = added
    if "postgresql" in added and "sqlite" in added:
        out["postgresql_minus_sqlite"] = {
            key: round(added["postgresql"][key] - added["sqlite"][key], 3)
            for key in ("added_p50_ms", "added_p90_ms")
        }
    return out


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def markdown(section: Mapping[str, Any]) -> str:
    """The section's tables: requests/s per store, keys and replica count (with its ratio
    to the floor, 2 replicas to 1, PostgreSQL to SQLite), CPU per request of the gateways
    and the database, and sequential latency with what each store adds to the direct
    call."""
    throughput, compared = section["throughput"], section["compared"]
    skipped = section.get("postgresql_skipped")
    failed = [
        f"{name} {figures['errors']} of {figures['wrk_answers']}"
        for name, figures in throughput.items()
        if figures.get("errors")
    ]
    lines = [
        f"Replicas on one database: {section['balancing']}; {section['pinning']}.",
        *([f"PostgreSQL {skipped}."] if skipped else []),
        *([f"Answers but a 2xx (all rounds): {'; '.join(failed)}."] if failed else []),
        "",
        "| requests/s at 50 connections | 1 replica | 2 replicas | 2 / 1 |",
        "|---|---|---|---|",
        f"| floor (one process) | {_num(throughput['floor']['rps'])} | | |",
    ]

    def rps(name: str, figures: Mapping[str, Any]) -> str:
        return f"{_num(figures['rps'])} ({compared['rps_to_floor'][name]:.2f}× floor)"

    for label, name, cells in _rows(throughput, rps):
        two_to_one = compared["two_to_one"].get(name)
        lines.append(
            f"| {label} | {cells[0]} | {cells[1]} | "
            f"{'' if two_to_one is None else f'{two_to_one:.2f}×'} |"
        )
    ratios = compared["postgresql_to_sqlite_rps"]
    for keys, keys_label in KEYS.items():
        cells = [ratios.get(shape(n, keys)) for n in (1, 2)]
        if any(cells):
            text = ["" if c is None else f"{c:.2f}×" for c in cells]
            lines.append(f"| PostgreSQL / SQLite, {keys_label} | {text[0]} | {text[1]} | |")
    lines += ["", *_cpu_rows(throughput), "", *_latency_rows(section)]
    return "\n".join(lines) + "\n"


def _rows(
    throughput: Figures, cell: Callable[[str, Mapping[str, Any]], str]
) -> Iterator[tuple[str, str, list[str]]]:
    """For each store and keys: the row's label, its series, and ``cell(arm, figures)``
    for 1 and 2 replicas (empty where the arm was not measured)."""
    for store, label in STORES.items():
        for keys, keys_label in KEYS.items():
            names = [arm(store, n, keys) for n in (1, 2)]
            cells = [cell(n, throughput[n]) if n in throughput else "" for n in names]
            yield f"{label}, {keys_label}", series(store, keys), cells


def _cpu(name: str, figures: Mapping[str, Any]) -> str:
    """CPU per request of the gateways, and of PostgreSQL's processes where they ran."""
    cell = f"{figures['cpu_ms_per_request']:.3f}"
    if "database_cpu_ms_per_request" in figures:
        cell += f" + {figures['database_cpu_ms_per_request']:.3f}"
    return cell


def _cpu_rows(throughput: Figures) -> list[str]:
    """CPU per request of the gateways (+ the database) for every arm."""
    lines = [
        "| CPU per request (ms): gateways + database | 1 replica | 2 replicas |",
        "|---|---|---|",
        f"| floor (one process) | {throughput['floor']['cpu_ms_per_request']:.3f} | |",
    ]
    lines += [f"| {label} | {c[0]} | {c[1]} |" for label, _, c in _rows(throughput, _cpu)]
    return lines


def _latency_rows(section: Mapping[str, Any]) -> list[str]:
    """Sequential latency through one replica of each store, and what each adds."""
    latency, compared = section["latency"], section["compared"]
    lines = [
        "| sequential latency, 1 replica (ms) | p50 | p90 | added p50 | added p90 "
        "| added p50 / floor's |",
        "|---|---|---|---|---|---|",
    ]
    added = compared["added_latency"]
    for target, label in (("direct", "direct"), ("floor", "floor"), *STORES.items()):
        if target not in latency:
            continue
        row = [_num(latency[target]["p50_ms"]), _num(latency[target]["p90_ms"])]
        more = added.get(target, {})
        row += [f"{more[k]:.3f}" if k in more else "" for k in ("added_p50_ms", "added_p90_ms")]
        to_floor = more.get("added_p50_to_floor")
        row.append("" if to_floor is None else f"{to_floor:.2f}×")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    if "postgresql_minus_sqlite" in compared:
        diff = compared["postgresql_minus_sqlite"]
        lines.append(
            f"| PostgreSQL − SQLite | | | {diff['added_p50_ms']:+.3f} "
            f"| {diff['added_p90_ms']:+.3f} | |"
        )
    return lines
