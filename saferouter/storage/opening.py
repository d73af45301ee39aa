"""Which store a server, a worker or the CLI opens: the one place that names a store
class (today the SQLite file in the data dir); everything else holds the ``Store``
protocol."""

from __future__ import annotations

from ..config import Settings
from . import Store
from .sqlite import SQLiteStore


def open_store(settings: Settings) -> Store:
    """The configured store, opened (closed with ``await store.close()``)."""
    return SQLiteStore.in_data_dir(
        settings.data_dir, activity_retention_days=settings.activity_retention_days
    )
