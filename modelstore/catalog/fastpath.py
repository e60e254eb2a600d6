"""The catalog's hot paths for SQLite, as prepared statements on one persistent DBAPI connection.

``Registry.path`` must answer in tens of microseconds and a registration's catalog work in well
under a millisecond; SQLAlchemy's statement construction alone costs more than that. These
statements are the same ones the Core versions in ``catalog.py`` build (a test runs both paths
against the same behaviours). The connection is in autocommit mode (the engine's connect hook
sets ``isolation_level = None``), so a transaction is exactly the ``BEGIN IMMEDIATE`` ... ``COMMIT``
written here; a lock serialises its use across threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timezone
from typing import Any

from modelstore.catalog.records import NewVersion
from modelstore.catalog.tables import PENDING
from modelstore.errors import CatalogError

_LATEST = (
    "SELECT version, entry FROM model_versions WHERE name = ? AND state = 'ready' "
    "ORDER BY version DESC LIMIT 1"
)
_EXACT = (
    "SELECT version, entry FROM model_versions WHERE name = ? AND version = ? AND state = 'ready'"
)
_LAST = "SELECT last_version FROM model_names WHERE name = ?"
_NEW_NAME = "INSERT INTO model_names (name, last_version) VALUES (?, ?)"
_BUMP = "UPDATE model_names SET last_version = ? WHERE name = ?"
_INSERT_VERSION = (
    "INSERT INTO model_versions (name, version, state, token, entry, kind, size, file_count, "
    "sha256, created_at, tags, properties, description, framework, framework_version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FILE = "INSERT INTO version_files (version_id, relpath, size, sha256) VALUES (?, ?, ?, ?)"
_SET_STATE = "UPDATE model_versions SET state = ? WHERE id = ? AND state = ?"

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy's SQLite ``DateTime`` stores values, so both paths read each other's rows."""


class SqliteFastPath:
    def __init__(self, connection: sqlite3.Connection, db_url: str) -> None:
        self._connection = connection
        self._url = db_url
        self._lock = threading.RLock()

    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        with self._lock:
            try:
                rows = self._connection.execute(
                    _LATEST if version is None else _EXACT,
                    (name,) if version is None else (name, version),
                ).fetchall()  # fetch everything: an unfinished statement keeps a read lock
            except sqlite3.Error as exc:
                raise _error(exc, "reading", self._url) from exc
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1])

    def reserve(self, new: NewVersion) -> tuple[int, int]:
        """(row id, version): the next number taken and the pending row written, atomically."""
        created = new.created_at.astimezone(timezone.utc).strftime(DATETIME_FORMAT)
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    last = connection.execute(_LAST, (new.name,)).fetchall()
                    version = int(last[0][0]) + 1 if last else 1
                    if last:
                        connection.execute(_BUMP, (version, new.name))
                    else:
                        connection.execute(_NEW_NAME, (new.name, version))
                    cursor = connection.execute(
                        _INSERT_VERSION,
                        (
                            new.name,
                            version,
                            PENDING,
                            new.token,
                            new.entry,
                            new.kind,
                            new.size,
                            new.file_count,
                            new.sha256,
                            created,
                            json.dumps(new.tags),
                            json.dumps(new.properties),
                            new.description,
                            new.framework,
                            new.framework_version,
                        ),
                    )
                    row_id = cursor.lastrowid
                    assert row_id is not None
                    connection.executemany(
                        _INSERT_FILE, [(row_id, f.relpath, f.size, f.sha256) for f in new.files]
                    )
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _error(exc, "writing to", self._url) from exc
        return row_id, version

    def set_state(self, row_id: int, state: str, expected: str) -> bool:
        with self._lock:
            try:
                cursor = self._connection.execute(_SET_STATE, (state, row_id, expected))
            except sqlite3.Error as exc:
                raise _error(exc, "writing to", self._url) from exc
        return cursor.rowcount > 0


def _error(exc: sqlite3.Error, doing: str, db_url: str) -> CatalogError:
    from modelstore.catalog.catalog import catalog_error

    return catalog_error(exc, doing, db_url)


def driver_connection(fairy: Any) -> sqlite3.Connection:
    connection = fairy.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    return connection
