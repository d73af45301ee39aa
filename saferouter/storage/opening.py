"""Which store a server, a worker or the CLI opens: the one place that names a store
class; everything else holds the ``Store`` protocol.

``settings.database_url`` chooses: none is the SQLite file in the data dir (the embedded
default); ``sqlite:///path`` a SQLite file elsewhere (several servers on one host may
share it); ``postgresql://…`` (or ``postgres://…``) the PostgreSQL store that replicas on
several hosts share (:mod:`.postgres`, imported only then).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from ..config import Settings
from ..errors import ConfigError
from . import Store
from .sqlite import DB_NAME, SQLiteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")
OPTION = "--database (SAFEROUTER_DATABASE_URL)"


def open_store(settings: Settings, *, owner: str | None = None) -> Store:
    """The configured store, opened for ``owner`` (:mod:`.leases`; a random one by
    default: fine for whatever admits no request) and closed with ``await store.close()``."""
    retention = settings.activity_retention_days
    url = settings.database_url
    if url is None:
        return SQLiteStore.in_data_dir(
            settings.data_dir, activity_retention_days=retention, owner=owner
        )
    parts = _split(url)
    if parts.scheme == "sqlite":
        return SQLiteStore(
            sqlite_path(url), activity_retention_days=retention, owner=owner, own_folder=False
        )
    validate_postgres_url(url)
    from .postgres import PostgresStore  # psycopg is loaded only by who needs it

    return PostgresStore(url, activity_retention_days=retention, owner=owner)


def _split(url: str) -> SplitResult:
    """``url`` split, its scheme one this module opens; else :class:`ConfigError`. No
    message here quotes the URL: it may hold a password."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        raise ConfigError(f"{OPTION} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme != "sqlite" and scheme not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"{OPTION} must be postgresql://… or sqlite:///path, "
            f"not a {scheme or 'scheme-less'} URL"
        )
    return parts._replace(scheme=scheme)


def validate_postgres_url(url: str) -> None:
    """Refuse (:class:`ConfigError`) a PostgreSQL URL libpq could never connect with, at
    once: left to the pool, each would be a connect retried for seconds and then
    reported as "cannot be reached", with libpq's parse error logged on the way, which
    quotes the token it choked on (the password, for a bad percent-escape in it)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        raise ConfigError(f"{OPTION} is not a valid PostgreSQL URL") from None
    for port in str(params.get("port") or "5432").split(","):  # one per host, or one for all
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"{OPTION} has a port that is not a number from 1 to 65535")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///absolute/path`` URL (``sqlite:///~/x.db`` is in $HOME)."""
    parts = _split(url)
    if parts.netloc or not parts.path or parts.path == "/":
        raise ConfigError(f"a SQLite database URL is sqlite:///path/to/file.db, not {url!r}")
    path = unquote(parts.path[1:] if parts.path.startswith("/~") else parts.path)
    if "\0" in path:
        raise ConfigError(f"{OPTION}: a file name cannot hold a NUL (%00)")
    return Path(path).expanduser()


def describe(settings: Settings) -> str:
    """The store, for a start-up line: never the URL itself (it may hold a password)."""
    url = settings.database_url
    if url is None:
        return f"SQLite at {settings.data_dir / DB_NAME}"
    parts = _split(url)
    if parts.scheme == "sqlite":
        return f"SQLite at {sqlite_path(url)}"
    validate_postgres_url(url)  # (a bad port would raise in parts.port)
    host = parts.hostname or "the local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL at {host}{port}{parts.path or ''}"
