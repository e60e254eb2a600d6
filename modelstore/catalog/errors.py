"""How a database failure becomes one ``CatalogError`` line, whichever layer raised it (an
SQLAlchemy error or a bare DBAPI one from the SQLite fast path), and how damage and a full disk
are told apart from other failures."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from modelstore.catalog.engine import is_sqlite, parse_catalog_url, sqlite_file
from modelstore.errors import (
    REBUILD_CATALOG_HINT,
    CatalogConnectionError,
    CatalogDamagedError,
    CatalogError,
    Remedy,
)

_DAMAGE = ("malformed", "file is not a database", "database corruption")


def is_damage(cause: str) -> bool:
    """SQLite's words for a corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    return any(word in cause for word in _DAMAGE)


def damaged_error(db_url: str, problems: list[str]) -> CatalogDamagedError:
    where = sqlite_file(parse_catalog_url(db_url)) or repr(parse_catalog_url(db_url))
    first = problems[0] if problems else "quick_check failed"
    more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    return CatalogDamagedError(
        f"the catalog {where} is damaged ({one_line_text(first)}{more}); nothing was changed",
        hint=REBUILD_CATALOG_HINT,
        catalog=where,
        problems=problems,
    )


def catalog_error(exc: BaseException, doing: str, db_url: str | None = None) -> CatalogError:
    unreachable = None if db_url is None else connection_error(db_url, exc)
    if unreachable is not None:  # a server that went away after the catalog was opened
        return unreachable
    refused = None if db_url is None else permission_error(db_url, exc)
    if refused is not None:
        return refused
    cause = one_line(getattr(exc, "orig", None) or exc)
    if db_url is not None and is_damage(cause):
        return damaged_error(db_url, [cause])
    remedy: Remedy | None = None
    if "readonly" in cause or "read-only" in cause:
        hint = "the catalog is open read-only (a read-only home); write from a writable home"
    elif ("disk" in cause and "full" in cause) or (
        db_url is not None and full_disk(db_url) is not None
    ):
        hint = "the disk is full; free some space and retry"
    elif "locked" in cause:
        hint = "another process kept the catalog locked too long; retry"
    else:
        hint = "check the database file or URL, then retry"
        remedy = "run_doctor"
    if remedy is None:
        return CatalogError(f"error {doing} the catalog ({cause}): {hint}")
    return CatalogError(
        f"error {doing} the catalog ({cause}): {hint}",
        hint="Registry.doctor() reports leftovers",
        remedy=remedy,
    )


def full_disk(db_url: str) -> str | None:
    """The folder of a SQLite catalog file if its file system has no free block left (SQLite
    then reports "disk I/O error" or "unable to open", not a full disk)."""
    database = sqlite_file(parse_catalog_url(db_url))
    if database is None:
        return None
    folder = os.path.dirname(os.path.abspath(database))
    try:
        return folder if os.statvfs(folder).f_bavail == 0 else None
    except OSError:
        return None


def one_line(exc: BaseException) -> str:
    return one_line_text(str(exc))


def one_line_text(text: str) -> str:
    return " ".join(text.split())[:300]


def driver_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """The DBAPI driver's base error class, which a failed connect raises unwrapped."""
    dbapi: Any = getattr(engine.dialect, "loaded_dbapi", None)
    error = getattr(dbapi, "Error", None)
    return (error,) if isinstance(error, type) and issubclass(error, BaseException) else ()


_CONNECTION_LOST = {"OperationalError", "AdminShutdown", "CrashShutdown", "CannotConnectNow"}
"""PEP 249's class for connection-level failures, and psycopg 3's subclasses of it for a server
that ended the session (SQLSTATE 57P01-57P03: shut down or restarted, crashed, starting up). Not
the other subclasses (a cancelled statement, a lock not available): the connection is fine."""


def connection_error(db_url: str, exc: BaseException) -> CatalogConnectionError | None:
    """A server database that cannot be reached or logged into, as one line naming host, port
    and database, never the password (the driver's text is scrubbed of it too); None for any
    other failure. SQLite files have their own messages (damage, full disk)."""
    url = parse_catalog_url(db_url)
    if is_sqlite(url):
        return None
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if orig is None or type(orig).__name__ not in _CONNECTION_LOST:
        return None
    reason = one_line(orig)
    if url.password:
        reason = reason.replace(str(url.password), "***")
    reason = reason.removeprefix("connection failed: ")
    masked = url.render_as_string(hide_password=True)
    host = url.host
    advice = (
        "check that the server is running and the host, port, database, user and password in "
        "MODELSTORE_DB_URL"
    )
    if host is not None and "@" in host:  # user:p@ss@host: the parser took "ss@host" for host
        leaked, host = host.rsplit("@", 1)
        reason = reason.replace(f"{leaked}@", "***@")
        masked = masked.replace(f"@{leaked}@", "@***@")
        advice = (
            "the URL holds two @: a password with @, :, / or % in it must be percent-encoded "
            "in MODELSTORE_DB_URL (@ is %40, : is %3A, / is %2F, % is %25)"
        )
    where = f"{host or 'localhost'}{f':{url.port}' if url.port else ''}"
    return CatalogConnectionError(
        f"cannot connect to the catalog database {url.database or '(default)'} on {where} "
        f"({masked}): {reason}; {advice}",
        catalog=masked,
        host=host,
        port=url.port,
        database=url.database,
        reason=reason,
    )


def permission_error(db_url: str, exc: BaseException) -> CatalogError | None:
    """A server database user who may connect but was not granted the catalog's tables
    (SQLSTATE 42501, insufficient privilege), as one line saying which grant is missing; None
    for any other failure. Common where a DBA gives each member of a team a role of their own."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if orig is None or code != "42501":
        return None
    url = parse_catalog_url(db_url)
    user = url.username or "(the connecting user)"
    cause = one_line(orig)
    if url.password:
        cause = cause.replace(str(url.password), "***")
    return CatalogError(
        f"the database user {user} may connect to the catalog database "
        f"{url.database or '(default)'} but not use its tables ({cause}); nothing was changed "
        "(ask the database's owner to grant them: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL "
        f"TABLES IN SCHEMA public TO {user}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "
        f"{user}; with the catalog's own schema in place of public if it has one)",
        catalog=url.render_as_string(hide_password=True),
    )
