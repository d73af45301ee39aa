"""``/metrics`` for every worker of a ``--workers N`` gateway, whichever one answers.

Each worker counts its own requests (:class:`~saferouter.metrics_registry.MetricsRegistry`,
in memory: the request path takes no lock and does no I/O). A scraper's connection
lands on one worker, so each worker also writes its registry's snapshot to a file of
its own under ``<data dir>/metrics/`` — every ``interval_s`` while it has counted
something new, off the request path — and the worker that answers a scrape writes its
own afresh, reads its siblings' and merges them all. The others' counts are at most
``interval_s`` old; counters never go backwards (a worker that died leaves its last
snapshot behind, still counted).

A file is named ``<parent pid>-<worker pid>.json``: the workers of one server share the
parent, so a snapshot left by an earlier run of the server is not counted (and is
removed). Each file is written whole, then renamed into place: a reader never sees half
of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import attrs
import trio

from .metrics_registry import MetricsRegistry

log = logging.getLogger(__name__)

DIRECTORY = "metrics"  # under the data dir
INTERVAL_S = 2.0


@attrs.define
class SharedMetrics:
    """This worker's registry, shared with its siblings through ``directory``."""

    registry: MetricsRegistry
    directory: Path
    interval_s: float = INTERVAL_S
    _written: int = attrs.field(default=-1, init=False)  # the registry's changes, then

    @classmethod
    def in_data_dir(cls, registry: MetricsRegistry, data_dir: Path) -> SharedMetrics:
        """Shared through ``<data_dir>/metrics/``."""
        return cls(registry, data_dir / DIRECTORY)

    @property
    def _prefix(self) -> str:
        return f"{os.getppid()}-"

    @property
    def own_path(self) -> Path:
        return self.directory / f"{self._prefix}{os.getpid()}.json"

    async def run(self) -> None:
        """Write this worker's snapshot whenever it changed, until cancelled."""
        await trio.to_thread.run_sync(self._clear_earlier_runs)
        while True:
            if self.registry.changes != self._written:
                await self.write()
            await trio.sleep(self.interval_s)

    async def write(self) -> None:
        """This worker's snapshot, now (taken here, in the trio thread that updates it)."""
        changes, snapshot = self.registry.changes, self.registry.snapshot()
        await trio.to_thread.run_sync(self._write, snapshot)
        self._written = changes

    async def encode(self) -> str:
        """Every worker's request metrics, merged, in the text format."""
        await self.write()
        snapshots = await trio.to_thread.run_sync(self._read_all)
        merged = MetricsRegistry(known_models=self.registry.known_models)
        for snapshot in snapshots:
            try:
                merged.merge(snapshot)
            except (ValueError, KeyError, TypeError) as exc:  # another build's, say
                log.warning("a metrics snapshot was not merged: %r", exc)
        return merged.encode()

    def _write(self, snapshot: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.own_path.with_suffix(".tmp")
        partial.write_text(json.dumps(snapshot))
        partial.replace(self.own_path)

    def _read_all(self) -> list[dict[str, Any]]:
        snapshots = []
        for path in sorted(self.directory.glob(f"{self._prefix}*.json")):
            try:
                snapshots.append(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:  # removed meanwhile, or not ours to read
                log.warning("metrics snapshot %s not read: %s", path.name, exc)
        return snapshots

    def _clear_earlier_runs(self) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if not path.name.startswith(self._prefix):
                path.unlink(missing_ok=True)
