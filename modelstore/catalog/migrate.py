"""Bring a catalog to the schema of this release, cheaply when it already is there.

Opening a registry is frequent (every CLI call, every ``get_model_path`` fallback), and alembic's
machinery costs tens of milliseconds, so the revision is read first with one raw query; a new
catalog is created from the ORM metadata and stamped, and alembic runs only to upgrade an older
catalog. Concurrent first opens are serialised by
the caller's lock; the migration itself runs in one transaction (SQLite DDL is transactional).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from modelstore.errors import CatalogError

HEAD_REVISION = "0005"
"""The newest migration shipped with this release (a test checks it against the scripts)."""

KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


_POSTGRES_LOCK = "hashtext('modelstore catalog migration'), hashtext(current_schema())"
"""The advisory lock key serialising migrations of one catalog: one per database and schema."""


def current_revision(engine: Engine) -> str | None:
    """The catalog's alembic revision, or None for a catalog without one (new, empty)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if engine.dialect.name == "postgresql":
                _check_schema(cursor)
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                if engine.dialect.name == "sqlite"
                # pg_tables, not information_schema: that one lists only the tables the user
                # may use, so a user without grants would see a new, empty catalog
                else "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'alembic_version'"
                " AND schemaname = current_schema()"
                if engine.dialect.name == "postgresql"
                else "SELECT 1 FROM information_schema.tables WHERE table_name='alembic_version'"
            )
            if not cursor.fetchall():
                return None
            cursor.execute("SELECT version_num FROM alembic_version")
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if engine.dialect.name != "sqlite":
            raw.commit()
    finally:
        raw.close()
    return str(rows[0][0]) if rows else None


def _check_schema(cursor: Any) -> None:
    """A ``search_path`` naming no existing schema leaves PostgreSQL nowhere to create tables."""
    cursor.execute("SELECT current_schema(), current_setting('search_path')")
    schema, search_path = cursor.fetchone()
    if schema is None:
        raise CatalogError(
            f"the catalog database has no schema named by its search_path ({search_path}); "
            "create it first (CREATE SCHEMA ...) or fix the search_path in MODELSTORE_DB_URL"
        )


@contextlib.contextmanager
def database_lock(engine: Engine) -> Iterator[None]:
    """Held while a catalog is created or upgraded, by every process of every home: on
    PostgreSQL a session advisory lock on its own connection (released by the server if this
    process dies); SQLite's file already serialises its writers, so nothing there."""
    if engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    with engine.connect() as connection:
        connection.execute(text(f"SELECT pg_advisory_lock({_POSTGRES_LOCK})"))
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text(f"SELECT pg_advisory_unlock({_POSTGRES_LOCK})"))
            connection.commit()


def alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run alembic's upgrade to ``revision`` on ``engine`` (tests use it to build old catalogs)."""
    from alembic import command

    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def ensure_schema(
    engine: Engine,
    lock: contextlib.AbstractContextManager[Any],
    *,
    refuse_new: Callable[[], None] | None = None,
    read_only: bool = False,
) -> None:
    """Make the catalog current; a no-op (one query) when it already is.

    ``refuse_new`` is called before a schema would be created in a database that has none, and
    raises when that must not happen (the tree already holds versions, or this is a read).
    ``read_only``: nothing is ever created or upgraded, a catalog not at the head is refused.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    _refuse_unknown(revision)
    if revision is None and refuse_new is not None:
        refuse_new()
    if read_only:
        raise CatalogError(
            f"the catalog has schema revision {revision}, older than this release's "
            f"{HEAD_REVISION}, and reads never upgrade it",
            hint="open it once for writing (e.g. Registry(home).doctor()) to upgrade it",
            remedy="upgrade_catalog",
        )
    with lock, database_lock(engine):
        revision = current_revision(engine)  # another process may have just done it
        if revision == HEAD_REVISION:
            return
        _refuse_unknown(revision)
        try:
            if revision is None:
                if refuse_new is not None:
                    refuse_new()
                _switch_new_to_wal(engine)
                create_fresh(engine)
            else:
                upgrade(engine)
        except CatalogError:
            raise
        except Exception as exc:  # alembic and the driver raise many kinds
            raise CatalogError(
                f"cannot bring the catalog to schema {HEAD_REVISION} ({exc.__class__.__name__}: "
                f"{_one_line(exc)}); check the database URL and that the file is writable"
            ) from exc


def _switch_new_to_wal(engine: Engine) -> None:
    """A new SQLite file catalog goes to WAL before its schema is written (the engine leaves
    blank files alone until a schema may be created there)."""
    from modelstore.catalog.engine import is_memory, switch_to_wal

    if engine.dialect.name != "sqlite" or is_memory(engine.url):
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()
    finally:
        raw.close()


def create_fresh(engine: Engine) -> None:
    """A new catalog: the tables straight from the ORM metadata, stamped at the head revision,
    in one transaction (alembic's documented "create_all, then stamp" for new databases). It
    reads no migration scripts, so it also works under pyfakefs; a test proves the result is
    identical to running every migration."""
    from sqlalchemy import inspect, text

    from modelstore.catalog.tables import Base

    with engine.begin() as connection:
        existing = inspect(connection).get_table_names()
        if existing:
            raise CatalogError(
                f"the database already holds tables ({', '.join(sorted(existing)[:5])}) but no "
                "modelstore schema revision; point MODELSTORE_DB_URL at a modelstore catalog "
                "or an empty database"
            )
        Base.metadata.create_all(connection)
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
        )
        connection.execute(
            text("INSERT INTO catalog_info (key, value) VALUES ('created_by', :v)"),
            {"v": f"modelstore {_release()}"},
        )


def _release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelstore")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _refuse_unknown(revision: str | None) -> None:
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise CatalogError(
            f"the catalog has schema revision {revision!r}, unknown to this modelstore release "
            f"(newest known: {HEAD_REVISION}); upgrade modelstore to open it"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


@contextlib.contextmanager
def no_lock() -> Iterator[None]:
    yield
