"""Which store a server, a worker or the CLI opens: the one place that names a store
class; everything else holds the ``Store`` protocol.

``settings.database_url`` chooses: none is the SQLite file in the data dir (the embedded
default); ``sqlite:///path`` a SQLite file elsewhere (several servers on one host may
share it); ``postgresql://…`` (or ``postgres://…``) the PostgreSQL store that replicas on
several hosts share (:mod:`.postgres`, imported only then).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError
from . import Store
from .sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(settings: Settings, *, owner: str | None = None) -> Store:
    """The configured store, opened for ``owner`` (:mod:`.leases`; a random one by
    default: fine for whatever admits no request) and closed with ``await store.close()``."""
    retention = settings.activity_retention_days
    url = settings.database_url
    if url is None:
        return SQLiteStore.in_data_dir(
            settings.data_dir, activity_retention_days=retention, owner=owner
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return SQLiteStore(
            sqlite_path(url), activity_retention_days=retention, owner=owner, own_folder=False
        )
    if scheme in POSTGRES_SCHEMES:
        from .postgres import PostgresStore  # psycopg is loaded only by who needs it

        return PostgresStore(url, activity_retention_days=retention, owner=owner)
    raise ConfigError(
        f"--database (SAFEROUTER_DATABASE_URL) must be postgresql://… or sqlite:///path, "
        f"not a {scheme or 'scheme-less'} URL"
    )


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///absolute/path`` URL (``sqlite:///~/x.db`` is in $HOME)."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path or parts.path == "/":
        raise ConfigError(f"a SQLite database URL is sqlite:///path/to/file.db, not {url!r}")
    return Path(unquote(parts.path[1:] if parts.path.startswith("/~") else parts.path)).expanduser()


def describe(settings: Settings) -> str:
    """The store, for a start-up line: never the URL itself (it may hold a password)."""
    url = settings.database_url
    if url is None:
        return f"SQLite at {settings.data_dir}"
    parts = urlsplit(url)
    if parts.scheme.lower() == "sqlite":
        return f"SQLite at {sqlite_path(url)}"
    host = parts.hostname or "the local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL at {host}{port}{parts.path or ''}"
