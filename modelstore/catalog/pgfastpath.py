"""The version store for PostgreSQL: each hot operation is one statement, on one connection.

A registration on a server database pays for every round trip twice, in latency and in the CPU
of both ends, and while it holds the lock on its name's number every other registration of that
name waits. Through SQLAlchemy a registration made about fourteen round trips (the pool's
liveness ping, ``BEGIN``, each statement, ``COMMIT``), with the name's row locked across
several of them. Here the same work is four statements in autocommit mode, each its own
transaction, so each is one round trip and the name's row is locked only while the server runs
one statement:

- ``take_lease``: one ``INSERT``;
- ``linkable_files``: one ``SELECT`` of the files of the name's newest versions;
- ``reserve``: one statement whose data-modifying ``WITH`` parts renew the lease, take the
  number (the upsert of ``versionstore``'s portable path, computed in place), insert the pending
  row and its manifest: PostgreSQL runs them as one atomic statement, and if the lease is gone
  none of them writes anything;
- ``set_state``: the ``UPDATE``, with the lease's ``DELETE`` in a ``WITH`` part.

The statements write exactly what ``versionstore.CoreVersionStore`` writes (a test compares the
stored rows). The connection is the catalog's own, checked out of the engine's pool for the
catalog's lifetime. As a pool's pre-ping would, it is checked before use, but only once it has
been idle for ``IDLE_CHECK_S`` (a connection used a moment ago is alive: HikariCP's
``aliveBypassWindowMs`` makes the same bet), and a read that finds it broken reconnects and runs
again. A write is never run twice: whether a write whose connection broke was committed cannot
be known, so it is reported, and doctor settles its lease. A process forked from one that used
the connection opens its own instead of sharing the socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import JSON, Engine

from modelstore.catalog.errors import catalog_error, driver_errors
from modelstore.catalog.leases import LeaseRecord, lease_lost
from modelstore.catalog.records import NewVersion, VersionRecord
from modelstore.catalog.tables import FILES, LEASES, NAMES, READY, VERSIONS
from modelstore.catalog.versionstore import LinkableFile, row_values

IDLE_CHECK_S = 1.0
"""A connection idle this long is checked (one ``SELECT 1``) before a write."""

_T = TypeVar("_T")

_NOW = "floor(date_part('epoch', clock_timestamp()))::bigint"  # leases.database_now
_ROW_COLUMNS = [column for column in VERSIONS.columns if column.name not in ("id", "version")]
_JSON_COLUMNS = {column.name for column in _ROW_COLUMNS if isinstance(column.type, JSON)}
_ROW_VALUES = ", ".join(
    f"%({c.name})s::json" if c.name in _JSON_COLUMNS else f"%({c.name})s" for c in _ROW_COLUMNS
)
_NUMBER = (
    f"INSERT INTO {NAMES.name} (name, last_version) SELECT %(name)s, 1 {{source}} "
    f"ON CONFLICT (name) DO UPDATE SET last_version = {NAMES.name}.last_version + 1 "
    "RETURNING last_version"
)
_RESERVE = (
    "WITH {renewed}number AS ({number}), "
    f"new_row AS (INSERT INTO {VERSIONS.name} "
    f"({', '.join(c.name for c in _ROW_COLUMNS)}, version) "
    f"SELECT {_ROW_VALUES}, last_version FROM number RETURNING id, version), "
    f"manifest AS (INSERT INTO {FILES.name} (version_id, relpath, size, sha256) "
    "SELECT new_row.id, f.relpath, f.size, f.sha256 FROM new_row, "
    "unnest(%(relpaths)s::text[], %(sizes)s::bigint[], %(digests)s::text[]) "
    "AS f(relpath, size, sha256)) "
    "SELECT id, version FROM new_row"
)
_RESERVE_LEASED = _RESERVE.format(
    renewed=(
        f"renewed AS (UPDATE {LEASES.name} SET heartbeat = {_NOW} "
        "WHERE token = %(token)s RETURNING token), "
    ),
    number=_NUMBER.format(source="FROM renewed"),
)
_RESERVE_FREE = _RESERVE.format(renewed="", number=_NUMBER.format(source=""))
_SET_STATE = (
    f"UPDATE {VERSIONS.name} SET state = %(state)s WHERE id = %(id)s AND state = %(expected)s"
)
_SET_STATE_RELEASING = (
    f"WITH released AS (DELETE FROM {LEASES.name} WHERE token = %(release)s) {_SET_STATE}"
)
_TAKE = (
    f"INSERT INTO {LEASES.name} "
    "(token, operation, name, home, host, host_id, pid, started, heartbeat) VALUES "
    f"(%(token)s, %(operation)s, %(name)s, %(home)s, %(host)s, %(host_id)s, %(pid)s, "
    f"%(started)s, {_NOW})"
)
_LATEST = (
    f"SELECT version, entry FROM {VERSIONS.name} WHERE name = %(name)s AND state = '{READY}' "
    "ORDER BY version DESC LIMIT 1"
)
_EXACT = (
    f"SELECT version, entry FROM {VERSIONS.name} WHERE name = %(name)s "
    f"AND version = %(version)s AND state = '{READY}'"
)
_ALIAS = (
    "SELECT v.version, v.entry FROM model_aliases a JOIN model_versions v "
    "ON v.name = a.name AND v.version = a.version WHERE a.name = %(name)s "
    f"AND a.alias = %(alias)s AND v.state = '{READY}'"
)
_LINKABLE = (
    f"SELECT v.version, f.relpath, f.size, f.sha256 FROM {VERSIONS.name} v "
    f"JOIN {FILES.name} f ON f.version_id = v.id WHERE v.id IN ("
    f"SELECT id FROM {VERSIONS.name} WHERE name = %(name)s AND state = '{READY}' "
    "AND version <> %(but)s ORDER BY version DESC LIMIT %(limit)s) "
    "ORDER BY v.version DESC, f.relpath"
)


class PsycopgVersionStore:
    def __init__(self, engine: Engine, db_url: str, fairy: Any = None) -> None:
        """``fairy``: a connection checked out of ``engine``'s pool (the catalog's, used to open
        it), to use first. The store detaches it from the pool: a connection switched to
        autocommit must never be handed to SQLAlchemy again (each of its statements would commit
        alone), not even when the store is dropped without ``close``."""
        self._engine = engine
        self._url = db_url
        self._lock = threading.RLock()
        self._errors = driver_errors(engine)
        self._driver: Any = None
        self._pid = os.getpid()
        self._used = time.monotonic()
        self._inherited: list[Any] = []
        if fairy is not None:
            self._driver = _detached(fairy)

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._discard()

    # --- the connection ----------------------------------------------------------------------

    def _connection(self, check_idle: bool) -> Any:
        """The driver's connection, in autocommit mode; a new one if there is none yet, it is
        closed, broken or not idle (``_dead``), it was idle long and fails a ``SELECT 1``, or
        this is a forked child: the parent's connection is then kept, unused and unclosed, for
        as long as the store lives (closing it, even by garbage collection, would end the
        parent's session)."""
        if self._pid != os.getpid():
            if self._driver is not None:
                self._inherited.append(self._driver)
                self._driver = None
            # The engine's pool holds the parent's sockets too: the child starts a pool of its
            # own, the parent's kept unclosed like its connection (SQLAlchemy's recipe for a
            # fork), so neither a new connection below nor the child's close touches them.
            self._inherited.append(self._engine.pool)
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        connection = self._driver
        if connection is not None and _dead(connection):
            self._discard()
            connection = None
        if connection is not None and check_idle and time.monotonic() - self._used > IDLE_CHECK_S:
            try:
                with connection.cursor() as ping:
                    ping.execute("SELECT 1")
            except self._errors:
                self._discard()
                connection = None
        if connection is None:
            connection = self._driver = _detached(self._engine.raw_connection())
        return connection

    def _discard(self) -> None:
        connection, self._driver = self._driver, None
        if connection is not None:
            with contextlib.suppress(*self._errors):
                connection.close()

    def _run(self, doing: str, work: Callable[[Any], _T], *, read: bool = False) -> _T:
        """``work(cursor)`` under the lock; a driver error becomes one CatalogError line. A read
        whose connection turns out broken runs once more on a new one."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    cursor = self._connection(check_idle=not read).cursor()
                    try:
                        result = work(cursor)
                    finally:
                        cursor.close()
                    self._used = time.monotonic()
                    return result
                except self._errors as exc:
                    broken = self._driver is None or _dead(self._driver)
                    if broken:
                        self._discard()
                    if not (read and broken and attempt == 1):
                        raise catalog_error(exc, doing, self._url) from exc
            raise AssertionError("unreachable")

    # --- the operations ----------------------------------------------------------------------

    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        query, params = (
            (_LATEST, {"name": name})
            if version is None
            else (_EXACT, {"name": name, "version": version})
        )
        return self._run("reading", lambda cursor: _first(cursor, query, params), read=True)

    def locate_alias(self, name: str, alias: str) -> tuple[int, str] | None:
        params = {"name": name, "alias": alias}
        return self._run("reading", lambda cursor: _first(cursor, _ALIAS, params), read=True)

    def linkable_files(self, name: str, limit: int, but: int | None) -> list[LinkableFile]:
        params = {"name": name, "limit": limit, "but": 0 if but is None else but}  # versions > 0

        def select(cursor: Any) -> list[LinkableFile]:
            cursor.execute(_LINKABLE, params)
            return [LinkableFile(int(v), str(r), int(s), str(d)) for v, r, s, d in cursor]

        return self._run("reading", select, read=True)

    def reserve(self, new: NewVersion, leased: bool = False) -> VersionRecord:
        pending = new.pending(0, 0)  # number and id come back from the statement
        params = row_values(pending)
        for column in _JSON_COLUMNS:
            params[column] = json.dumps(params[column])
        params["relpaths"] = [f.relpath for f in new.files]
        params["sizes"] = [f.size for f in new.files]
        params["digests"] = [f.sha256 for f in new.files]

        def insert(cursor: Any) -> tuple[int, int] | None:
            cursor.execute(_RESERVE_LEASED if leased else _RESERVE_FREE, params)
            row = cursor.fetchone()
            return None if row is None else (int(row[0]), int(row[1]))

        taken = self._run("writing to", insert)
        if taken is None:  # only the lease's renewal can come back empty
            raise lease_lost(new.name, new.token)
        return replace(pending, id=taken[0], version=taken[1])

    def set_state(self, row_id: int, state: str, expected: str, release: str | None = None) -> bool:
        params = {"state": state, "id": row_id, "expected": expected, "release": release}

        def update(cursor: Any) -> bool:
            cursor.execute(_SET_STATE if release is None else _SET_STATE_RELEASING, params)
            return bool(cursor.rowcount > 0)

        return self._run("writing to", update)

    def take_lease(self, lease: LeaseRecord) -> None:
        params = lease.columns()
        self._run("writing to", lambda cursor: cursor.execute(_TAKE, params))


def _detached(fairy: Any) -> Any:
    """The DBAPI connection of a pool checkout, taken out of the pool for good, in autocommit
    mode (a transaction left open, there should be none, ends unwritten)."""
    connection = fairy.driver_connection  # the record knows it: read it before detaching
    fairy.detach()
    if not connection.autocommit:
        connection.rollback()
        connection.autocommit = True
    return connection


def _dead(connection: Any) -> bool:
    """Closed, or (psycopg 3) broken by a lost server (psycopg2 marks both as ``closed``), or
    not idle between statements: a statement still running (its cancel was itself interrupted
    by a second Ctrl-C) or a transaction left open. Both drivers number the idle status 0."""
    if bool(connection.closed) or bool(getattr(connection, "broken", False)):
        return True
    return int(connection.info.transaction_status) != 0


def _first(cursor: Any, query: str, params: dict[str, Any]) -> tuple[int, str] | None:
    cursor.execute(query, params)
    row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))
