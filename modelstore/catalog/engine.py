"""Engine set-up: how a catalog URL becomes a SQLAlchemy engine that many processes can share.

For SQLite: WAL (readers never block the writer), ``synchronous=NORMAL`` (a commit survives
any process crash at once and a power cut from the next WAL sync on; it saves an fsync per
commit, and ``doctor`` reconciles the rare power-cut case), a long busy timeout, and
every transaction opened with ``BEGIN IMMEDIATE`` so that two writers queue on the database lock
instead of failing with "database is locked" when one upgrades a read lock to a write lock.
pysqlite's own transaction handling is switched off (``isolation_level = None``) so that
SQLAlchemy's ``begin`` event decides how transactions start: SQLAlchemy's documented recipe.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from typing import Any

# The SQLite dialect is imported here, not lazily by create_engine: a module first imported
# while pyfakefs is active keeps the fake ``os`` after the fake filesystem is gone, so the first
# catalog opened inside a pyfakefs test would break every later real-disk catalog in the process.
import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from modelstore.errors import CatalogError, InvalidArgumentError

BUSY_TIMEOUT_S = 120.0
"""How long a writer waits for another process's transaction before giving up."""


_SUPPORTED_URLS = (
    "write postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE (PostgreSQL, pip install "
    "'modelstore[team]') or sqlite:////abs/path/registry.db, or unset MODELSTORE_DB_URL to use "
    "<home>/registry.db"
)


def parse_catalog_url(db_url: str) -> URL:
    """The catalog URL (``MODELSTORE_DB_URL`` or ``db_url=``) parsed, or one line saying how one
    looks; the text itself is not echoed, as it may hold a password."""
    try:
        return make_url(db_url)
    except ArgumentError:
        raise InvalidArgumentError(
            "the catalog URL (MODELSTORE_DB_URL or db_url) is not a SQLAlchemy URL; write e.g. "
            "sqlite:////abs/path/registry.db, or unset it to use <home>/registry.db"
        ) from None


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_memory(url: URL) -> bool:
    """An in-memory SQLite catalog: plain ``sqlite://`` or a ``mode=memory`` URI."""
    if not is_sqlite(url):
        return False
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def sqlite_file(url: URL) -> str | None:
    """The file an on-disk SQLite URL names (``file:`` URIs included), else None."""
    if not is_sqlite(url) or is_memory(url):
        return None
    database = url.database or ""
    if database.startswith("file:"):
        database = database[len("file:") :]
    return database or None


def switch_to_wal(cursor: Any, timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """Put a SQLite database in WAL mode, waiting out other processes doing the same.

    Switching needs the exclusive lock, and when two new connections race to switch a fresh
    catalog, SQLite answers one with "database is locked" at once, without the busy wait (its
    deadlock avoidance). So the switch is retried, within the same busy timeout as any write;
    once another process has switched, the next try just finds WAL.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _is_blank(cursor: Any) -> bool:
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return False
    cursor.execute("SELECT count(*) FROM sqlite_master")
    return int(cursor.fetchone()[0]) == 0


def read_only_url(path: str) -> URL:
    """A SQLite URL that opens ``path`` for reading only: it can neither create the file nor
    change it.

    In a folder that cannot be written (a read-only mount) SQLite cannot create the ``-shm``
    index a WAL reader needs, so ``immutable=1`` is added: no side files, no locks, sound because
    nobody can write there either. Not when a ``-wal`` with content is present, though: an
    immutable open ignores the WAL and would miss the commits still in it; a plain read-only
    open reads them (it uses the ``-shm`` left beside it).
    """
    query = {"mode": "ro", "uri": "true"}
    if not os.access(os.path.dirname(path) or ".", os.W_OK):
        try:
            wal_size = os.stat(f"{path}-wal").st_size
        except OSError:
            wal_size = 0
        if wal_size == 0:
            query["immutable"] = "1"
    return URL.create("sqlite", database=f"file:{urllib.parse.quote(path)}", query=query)


def create_catalog_engine(db_url: str | URL, *, read_only: bool = False) -> Engine:
    """``read_only``: a SQLite file is opened as by :func:`read_only_url`, and nothing (WAL
    switch, synchronous) is set on it."""
    url = parse_catalog_url(db_url) if isinstance(db_url, str) else db_url
    if read_only and (database := sqlite_file(url)) is not None:
        url = read_only_url(database)
    if not is_sqlite(url):
        try:
            return create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError:  # a database (or driver) name SQLAlchemy does not know
            raise InvalidArgumentError(
                f"the catalog URL {url!r} names a database SQLAlchemy does not know "
                f"({url.drivername}://); {_SUPPORTED_URLS}"
            ) from None
        except ImportError as exc:  # the dialect's DBAPI driver, e.g. psycopg, is missing
            if url.get_backend_name() == "postgresql":
                advice = (
                    "use postgresql+psycopg:// with pip install 'modelstore[team]' (the driver "
                    f"modelstore is tested with), or pip install {exc.name or 'the driver'}"
                )
            else:
                advice = (
                    f"install the package that provides the Python module {exc.name!r} (only "
                    "SQLite and PostgreSQL catalogs are tested)"
                )
            raise CatalogError(
                f"cannot open the catalog {url!r}: its database driver is not installed "
                f"({exc}); {advice}, or unset MODELSTORE_DB_URL to use <home>/registry.db"
            ) from None
    memory = is_memory(url)
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    }
    if memory:
        # One connection per engine: a private database for "sqlite://"; for a shared-cache
        # URI, one connection per Registry into the process-wide database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not memory and not read_only:
                # WAL is a property of the file: set it once (switching needs the write lock,
                # so asking first keeps every later open free of lock traffic). A database
                # without tables is switched only once a schema may be created there
                # (migrate.ensure_schema): switching writes the file, and a catalog that was
                # lost must be left exactly as it is.
                if not _is_blank(cursor):
                    switch_to_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Readers (engine.execution_options(modelstore_read=True)) take no write lock.
        read_only = connection.get_execution_options().get("modelstore_read", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
