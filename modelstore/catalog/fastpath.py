"""The version store for SQLite: prepared statements on one persistent DBAPI connection.

``Registry.path`` must answer in tens of microseconds and a registration's catalog work in well
under a millisecond; SQLAlchemy's statement construction alone costs more than that. These
statements do what ``versionstore.CoreVersionStore`` does (a test runs both against the same
behaviours), and the version row is written from the table's own columns with the dialect's own
conversions, so both write identical rows. The connection is in autocommit mode (the engine's
connect hook sets ``isolation_level = None``), so a transaction is exactly the
``BEGIN IMMEDIATE`` ... ``COMMIT`` written here; a lock serialises its use across threads.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import Dialect

from modelstore.catalog.errors import catalog_error
from modelstore.catalog.leases import LeaseRecord, lease_lost
from modelstore.catalog.records import NewVersion, VersionRecord
from modelstore.catalog.tables import READY, VERSIONS
from modelstore.catalog.versionstore import LinkableFile, row_values

_LATEST = (
    f"SELECT version, entry FROM model_versions WHERE name = ? AND state = '{READY}' "
    "ORDER BY version DESC LIMIT 1"
)
_EXACT = (
    "SELECT version, entry FROM model_versions WHERE name = ? AND version = ? "
    f"AND state = '{READY}'"
)
_ALIAS = (
    "SELECT v.version, v.entry FROM model_aliases a JOIN model_versions v "
    f"ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ? "
    f"AND v.state = '{READY}'"
)
_LINKABLE = (
    "SELECT v.version, f.relpath, f.size, f.sha256 FROM model_versions v "
    "JOIN version_files f ON f.version_id = v.id WHERE v.id IN ("
    f"SELECT id FROM model_versions WHERE name = ? AND state = '{READY}' AND version <> ? "
    "ORDER BY version DESC LIMIT ?) ORDER BY v.version DESC, f.relpath"
)
_LAST = "SELECT last_version FROM model_names WHERE name = ?"
_NEW_NAME = "INSERT INTO model_names (name, last_version) VALUES (?, ?)"
_BUMP = "UPDATE model_names SET last_version = ? WHERE name = ?"
_INSERT_FILE = "INSERT INTO version_files (version_id, relpath, size, sha256) VALUES (?, ?, ?, ?)"
_SET_STATE = "UPDATE model_versions SET state = ? WHERE id = ? AND state = ?"
_NOW = "CAST(strftime('%s', 'now') AS INTEGER)"  # leases.database_now on SQLite
_RENEW = f"UPDATE leases SET heartbeat = {_NOW} WHERE token = ?"
_RELEASE = "DELETE FROM leases WHERE token = ?"
_TAKE = (
    "INSERT INTO leases (token, operation, name, home, host, host_id, pid, started, heartbeat) "
    f"VALUES (:token, :operation, :name, :home, :host, :host_id, :pid, :started, {_NOW})"
)

_ROW_COLUMNS = [column for column in VERSIONS.columns if column.name != "id"]
_INSERT_VERSION = (
    f"INSERT INTO {VERSIONS.name} ({', '.join(c.name for c in _ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ROW_COLUMNS)})"
)


class SqliteVersionStore:
    def __init__(self, connection: sqlite3.Connection, dialect: Dialect, db_url: str) -> None:
        self._connection = connection
        self._url = db_url
        self._lock = threading.RLock()
        # Each column of a version row with the dialect's conversion of its value (JSON text,
        # the DateTime storage format): what SQLAlchemy would store, byte for byte.
        self._to_sql: list[tuple[str, Callable[[Any], Any] | None]] = [
            (column.name, column.type.dialect_impl(dialect).bind_processor(dialect))
            for column in _ROW_COLUMNS
        ]

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """Every row of one query (fetched whole: an unfinished statement keeps a read lock)."""
        with self._lock:
            try:
                return self._connection.execute(query, params).fetchall()
            except sqlite3.Error as exc:
                raise catalog_error(exc, "reading", self._url) from exc

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock, rolled back on any failure."""
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise catalog_error(exc, "writing to", self._url) from exc

    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        rows = self._read(
            _LATEST if version is None else _EXACT,
            (name,) if version is None else (name, version),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def locate_alias(self, name: str, alias: str) -> tuple[int, str] | None:
        rows = self._read(_ALIAS, (name, alias))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def linkable_files(self, name: str, limit: int, but: int | None) -> list[LinkableFile]:
        params = (name, 0 if but is None else but, limit)  # versions start at 1
        return [LinkableFile(*row) for row in self._read(_LINKABLE, params)]

    def reserve(self, new: NewVersion, leased: bool = False) -> VersionRecord:
        pending = new.pending(0, 0)  # number and id are known inside the transaction
        values = row_values(pending)
        with self._immediate() as connection:
            if leased and not connection.execute(_RENEW, (new.token,)).rowcount:
                raise lease_lost(new.name, new.token)
            last = connection.execute(_LAST, (new.name,)).fetchall()
            version = int(last[0][0]) + 1 if last else 1
            if last:
                connection.execute(_BUMP, (version, new.name))
            else:
                connection.execute(_NEW_NAME, (new.name, version))
            values["version"] = version
            cursor = connection.execute(
                _INSERT_VERSION,
                [
                    values[column] if convert is None else convert(values[column])
                    for column, convert in self._to_sql
                ],
            )
            row_id = cursor.lastrowid
            assert row_id is not None
            connection.executemany(
                _INSERT_FILE, [(row_id, f.relpath, f.size, f.sha256) for f in new.files]
            )
        return replace(pending, id=row_id, version=version)

    def set_state(self, row_id: int, state: str, expected: str, release: str | None = None) -> bool:
        if release is None:  # one statement: autocommit is its own transaction
            with self._lock:
                try:
                    moved = self._connection.execute(_SET_STATE, (state, row_id, expected))
                except sqlite3.Error as exc:
                    raise catalog_error(exc, "writing to", self._url) from exc
                return moved.rowcount > 0
        with self._immediate() as connection:
            moved = connection.execute(_SET_STATE, (state, row_id, expected))
            connection.execute(_RELEASE, (release,))
        return moved.rowcount > 0

    def take_lease(self, lease: LeaseRecord) -> None:
        with self._lock:
            try:
                self._connection.execute(_TAKE, lease.columns())
            except sqlite3.Error as exc:
                raise catalog_error(exc, "writing to", self._url) from exc

    def close(self) -> None:
        pass  # the connection is the catalog's, closed with it


def driver_connection(fairy: Any) -> sqlite3.Connection:
    connection = fairy.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    return connection
