"""``/metrics`` for every worker of a ``--workers N`` gateway, whichever one answers.

Each worker counts its own requests (:class:`~saferouter.metrics_registry.MetricsRegistry`,
in memory: the request path takes no lock and does no I/O). A scraper's connection
lands on one worker, so each worker also writes its registry's snapshot to a file of
its own under ``<data dir>/metrics/`` — every ``interval_s`` while it has counted
something new, off the request path — and the worker that answers a scrape writes its
own afresh and merges its registry (from memory: counted even when the write failed)
with its siblings' files. The others' counts are at most ``interval_s`` old; counters
never go backwards (a worker that died leaves its last snapshot behind, still counted).

Sharing is a best effort that must never cost the worker anything else: a directory
that cannot be written (read-only, full, a file in its place) or a sibling's file that
does not read as a snapshot (:mod:`~saferouter.metrics_snapshot`) is logged and left
out, and the scrape still answers with everything else. (Raising from :meth:`run`
would end the worker's lifespan tasks, send watchdog included.)

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

from .errors import ParseError
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
    _failing: bool = attrs.field(default=False, init=False)  # the last write failed
    # one write at a time, each with a snapshot taken inside: the file only ever moves
    # forward (two at once shared the temporary file, and an older one could land last)
    _writing: trio.Lock = attrs.field(factory=trio.Lock, init=False)

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
        """Write this worker's snapshot whenever it changed, until cancelled; a write
        that fails is logged (once, until one succeeds again) and tried again later."""
        await trio.to_thread.run_sync(self._clear_earlier_runs)
        while True:
            if self.registry.changes != self._written:
                await self.write()
            await trio.sleep(self.interval_s)

    async def write(self) -> dict[str, Any]:
        """This worker's snapshot, now (taken here, in the trio thread that updates it),
        written to its file; returned, written or not."""
        async with self._writing:
            changes, snapshot = self.registry.changes, self.registry.snapshot()
            try:
                await trio.to_thread.run_sync(self._write, snapshot)
            except OSError as exc:
                if not self._failing:
                    log.warning("metrics snapshot not written to %s: %s", self.directory, exc)
                self._failing = True
                return snapshot
            self._failing = False
            self._written = changes
            return snapshot

    async def encode(self) -> str:
        """Every worker's request metrics, merged, in the text format: this worker's
        from memory, its siblings' from their files (one that does not parse is left
        out). This worker's counts are the very snapshot written afresh to its file (at
        best), not the registry as it is after the write: a scrape that lands on a
        sibling next sees at least these, so counters never go backwards between
        scrapes."""
        merged = MetricsRegistry(known_models=self.registry.known_models)
        merged.merge(await self.write())
        for name, snapshot in await trio.to_thread.run_sync(self._read_siblings):
            try:
                merged.merge(snapshot)
            except ParseError as exc:  # another build's, say, or an edited file
                log.warning("metrics snapshot %s not merged: %s", name, exc)
        return merged.encode()

    def _write(self, snapshot: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.own_path.with_suffix(".tmp")
        partial.write_text(json.dumps(snapshot))
        partial.replace(self.own_path)

    def _read_siblings(self) -> list[tuple[str, object]]:
        own, snapshots = self.own_path, []
        try:
            paths = sorted(self.directory.glob(f"{self._prefix}*.json"))
        except OSError as exc:
            log.warning("metrics snapshots in %s not listed: %s", self.directory, exc)
            return []
        for path in paths:
            if path == own:
                continue
            try:
                snapshots.append((path.name, json.loads(path.read_text())))
            except (OSError, ValueError) as exc:  # removed meanwhile, or not ours to read
                log.warning("metrics snapshot %s not read: %s", path.name, exc)
        return snapshots

    def _clear_earlier_runs(self) -> None:
        try:
            earlier = [p for p in self.directory.iterdir() if not p.name.startswith(self._prefix)]
        except OSError:  # no directory yet (or none to be had: the writes will say)
            return
        for path in earlier:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a directory, say: not ours to remove
                log.warning("earlier metrics snapshot %s not removed: %s", path.name, exc)
