"""The catalog: which versions exist, their manifests and metadata. Knows nothing of the tree.

Writes run in ``BEGIN IMMEDIATE`` transactions (see ``engine``), so a read-modify-write such as
"take the next version number" is atomic across processes. Reads use deferred transactions. The
hot operations (take a number, publish, the look-up behind ``Registry.path``) go to the
``VersionStore`` chosen for the backend when the catalog opens (see ``versionstore``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from modelstore.catalog import migrate
from modelstore.catalog.engine import create_catalog_engine, is_sqlite, parse_catalog_url
from modelstore.catalog.errors import damaged_error, full_disk, is_damage, one_line
from modelstore.catalog.fastpath import SqliteVersionStore, driver_connection
from modelstore.catalog.records import FileRecord, NewVersion, VersionRecord
from modelstore.catalog.tables import DELETING, PENDING, READY
from modelstore.catalog.tables import FILES as _FILES
from modelstore.catalog.tables import INFO as _INFO
from modelstore.catalog.tables import NAMES as _NAMES
from modelstore.catalog.tables import VERSIONS as _VERSIONS
from modelstore.catalog.versionstore import CoreVersionStore, VersionStore, reading, writing
from modelstore.errors import CatalogError, PropertyImmutableError


class Catalog:
    def __init__(
        self,
        db_url: str,
        migration_lock: contextlib.AbstractContextManager[Any] | None = None,
        *,
        read_only: bool = False,
        refuse_new: Callable[[], None] | None = None,
    ) -> None:
        """``read_only``: opened so that nothing can be created or changed (see
        ``engine.read_only_url``); ``refuse_new`` see ``migrate.ensure_schema``."""
        self.url = db_url
        self.read_only = read_only
        try:
            self._engine: Engine = create_catalog_engine(db_url, read_only=read_only)
        except SQLAlchemyError as exc:
            raise _open_error(db_url, exc) from exc
        try:
            migrate.ensure_schema(
                self._engine,
                migration_lock or migrate.no_lock(),
                refuse_new=refuse_new,
                read_only=read_only,
            )
            self._reader_fairy: Any = self._engine.raw_connection()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            self._engine.dispose()
            raise _open_error(db_url, exc) from exc
        except BaseException:
            self._engine.dispose()
            raise
        self._versions: VersionStore = (
            SqliteVersionStore(driver_connection(self._reader_fairy), self._engine.dialect, db_url)
            if is_sqlite(make_url(db_url))
            else CoreVersionStore(self._engine, db_url)
        )
        self._reads = self._engine.execution_options(modelstore_read=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader_fairy.close()
        self._engine.dispose()

    # --- transactions ------------------------------------------------------------------------

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        """One immediate (write-locked) transaction; commits on success."""
        return writing(self._engine, self.url)

    def _read(self) -> contextlib.AbstractContextManager[Connection]:
        return reading(self._reads, self.url)

    # --- registration ------------------------------------------------------------------------

    def reserve(self, new: NewVersion) -> VersionRecord:
        """Take the next number for ``new.name`` and record the version as pending, in one
        transaction: the number is spent even if the publish never completes."""
        return self._versions.reserve(new)

    def set_state(self, row_id: int, state: str, *, expected: str) -> bool:
        """Move a row from ``expected`` to ``state``; False if it is no longer in ``expected``
        (another process finished or removed it meanwhile)."""
        return self._versions.set_state(row_id, state, expected)

    def forget(self, row_ids: Iterable[int]) -> None:
        """Remove version rows and their manifests (the name's high-water mark stays)."""
        ids = list(row_ids)
        if not ids:
            return
        with self._write() as connection:
            connection.execute(delete(_FILES).where(_FILES.c.version_id.in_(ids)))
            connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id.in_(ids)))

    def start_delete(
        self, name: str, versions: Sequence[int] | None, token: str
    ) -> list[VersionRecord]:
        """Flip the chosen ready versions (every one when ``versions`` is None) to ``deleting``
        (invisible from now on) in one transaction and return them; the caller then removes the
        folders and ``forget``s them."""
        with self._write() as connection:
            where = [_VERSIONS.c.name == name, _VERSIONS.c.state == READY]
            if versions is not None:
                where.append(_VERSIONS.c.version.in_(list(versions)))
            rows = connection.execute(select(_VERSIONS).where(*where)).mappings().all()
            if rows:
                connection.execute(
                    update(_VERSIONS)
                    .where(_VERSIONS.c.id.in_([r["id"] for r in rows]))
                    .values(state=DELETING, token=token)
                )
        return [_record(r, state=DELETING, token=token) for r in rows]

    # --- fast lookups ------------------------------------------------------------------------

    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        """(version, entry) of a ready version, the latest when ``version`` is None."""
        return self._versions.locate(name, version)

    # --- reads -------------------------------------------------------------------------------

    def versions(self, name: str) -> list[int]:
        with self._read() as connection:
            return list(
                connection.execute(
                    select(_VERSIONS.c.version)
                    .where(_VERSIONS.c.name == name, _VERSIONS.c.state == READY)
                    .order_by(_VERSIONS.c.version)
                ).scalars()
            )

    def names(self) -> list[str]:
        """Names with at least one ready version, sorted."""
        with self._read() as connection:
            return list(
                connection.execute(
                    select(_VERSIONS.c.name)
                    .where(_VERSIONS.c.state == READY)
                    .distinct()
                    .order_by(_VERSIONS.c.name)
                ).scalars()
            )

    def get(self, name: str, version: int) -> VersionRecord | None:
        with self._read() as connection:
            row = (
                connection.execute(
                    select(_VERSIONS).where(
                        _VERSIONS.c.name == name,
                        _VERSIONS.c.version == version,
                        _VERSIONS.c.state == READY,
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    def ready_versions(self, name: str | None = None) -> list[VersionRecord]:
        """Ready versions, name ascending then version descending (Azure ML's order)."""
        query = select(_VERSIONS).where(_VERSIONS.c.state == READY)
        if name is not None:
            query = query.where(_VERSIONS.c.name == name)
        query = query.order_by(_VERSIONS.c.name, _VERSIONS.c.version.desc())
        with self._read() as connection:
            return [_record(r) for r in connection.execute(query).mappings()]

    def rows(self, states: Sequence[str] = (PENDING, READY, DELETING)) -> list[VersionRecord]:
        """Every row in the given states (for doctor, which must see unfinished work too)."""
        with self._read() as connection:
            return [
                _record(r)
                for r in connection.execute(
                    select(_VERSIONS)
                    .where(_VERSIONS.c.state.in_(list(states)))
                    .order_by(_VERSIONS.c.name, _VERSIONS.c.version)
                ).mappings()
            ]

    # --- guarded writes on a snapshot (doctor) ------------------------------------------------
    #
    # SQLite hands the id of the newest row out again once that row is deleted, so a row id
    # read earlier may name another version by now. (name, version) is never reused: doctor's
    # checks and writes match the whole identity and the state it saw, so they act on the
    # version it examined or on nothing.

    def _same_row(self, record: VersionRecord) -> list[Any]:
        return [
            _VERSIONS.c.id == record.id,
            _VERSIONS.c.name == record.name,
            _VERSIONS.c.version == record.version,
            _VERSIONS.c.state == record.state,
        ]

    def unchanged(self, record: VersionRecord) -> bool:
        """True if the row is still exactly as in ``record`` (same version, state and token):
        no live process moved it on since it was read."""
        with self._read() as connection:
            token = connection.execute(
                select(_VERSIONS.c.token).where(*self._same_row(record))
            ).one_or_none()
        return token is not None and token[0] == record.token

    def set_row_state(self, record: VersionRecord, state: str) -> bool:
        """Move the row of ``record`` from ``record.state`` to ``state`` if it still is that."""
        with self._write() as connection:
            result = connection.execute(
                update(_VERSIONS).where(*self._same_row(record)).values(state=state)
            )
        return bool(result.rowcount)

    def forget_row(self, record: VersionRecord) -> bool:
        """Remove the row of ``record`` (and its manifest) if it still is as recorded."""
        with self._write() as connection:
            found = connection.execute(
                select(_VERSIONS.c.id).where(*self._same_row(record))
            ).one_or_none()
            if found is None:
                return False
            connection.execute(delete(_FILES).where(_FILES.c.version_id == record.id))
            connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id == record.id))
        return True

    def files(self, row_id: int) -> list[FileRecord]:
        return self.manifests([row_id]).get(row_id, [])

    def manifests(self, row_ids: Iterable[int]) -> dict[int, list[FileRecord]]:
        """Row id -> its files, for many versions in one query (verify reads thousands)."""
        result: dict[int, list[FileRecord]] = {}
        ids = list(row_ids)
        with self._read() as connection:
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                rows = connection.execute(
                    select(_FILES.c.version_id, _FILES.c.relpath, _FILES.c.size, _FILES.c.sha256)
                    .where(_FILES.c.version_id.in_(ids[start : start + 500]))
                    .order_by(_FILES.c.version_id, _FILES.c.relpath)
                )
                for row in rows:
                    result.setdefault(row.version_id, []).append(
                        FileRecord(relpath=row.relpath, size=row.size, sha256=row.sha256)
                    )
        return result

    # --- metadata updates --------------------------------------------------------------------

    def update_tags(
        self, name: str, version: int | None, add: Mapping[str, str], remove: Iterable[str]
    ) -> tuple[VersionRecord, VersionRecord] | None:
        """Add (overwriting) then remove, atomically; (before, after), or None if there is no
        such ready version. ``version`` None: the latest, chosen in the same transaction (the
        metadata updates below do the same), so a concurrent delete is either before it (None)
        or after it, never between choosing the version and changing it."""
        removals = list(remove)
        with self._write() as connection:
            row = _ready_row(connection, name, version)
            if row is None:
                return None
            tags = dict(row["tags"])
            tags.update(add)
            for key in removals:
                tags.pop(key, None)
            connection.execute(
                update(_VERSIONS).where(_VERSIONS.c.id == row["id"]).values(tags=tags)
            )
        return _record(row), _record(row, tags=tags)

    def add_properties(
        self, name: str, version: int | None, properties: Mapping[str, str]
    ) -> VersionRecord | None:
        """Add-only and all-or-nothing, as Azure ML: an existing key given another value refuses
        the whole call. Unlike Azure ML, an existing key given its current value is accepted
        (nothing changes), so re-running a script that sets properties is not an error."""
        with self._write() as connection:
            row = _ready_row(connection, name, version)
            if row is None:
                return None
            current = dict(row["properties"])
            taken = [key for key, value in properties.items() if current.get(key, value) != value]
            if taken:
                raise PropertyImmutableError(
                    "Error, properties are immutable, the following keys cannot be "
                    f"added/modified: {','.join(taken)} (register a new version to change them)",
                    name=row["name"],
                    version=row["version"],
                    keys=taken,
                )
            current.update(properties)
            connection.execute(
                update(_VERSIONS).where(_VERSIONS.c.id == row["id"]).values(properties=current)
            )
        return _record(row, properties=current)

    def set_description(
        self, name: str, version: int | None, description: str | None
    ) -> VersionRecord | None:
        with self._write() as connection:
            row = _ready_row(connection, name, version)
            if row is None:
                return None
            connection.execute(
                update(_VERSIONS).where(_VERSIONS.c.id == row["id"]).values(description=description)
            )
        return _record(row, description=description)

    # --- damage and recovery -----------------------------------------------------------------

    def check_integrity(self) -> None:
        """Raise CatalogDamagedError unless SQLite's ``quick_check`` passes (it reads every
        page, so it runs where a whole pass is expected anyway: doctor, verify, delete).
        Other databases check their own pages; there this is a no-op."""
        if not isinstance(self._versions, SqliteVersionStore):
            return
        with self._read() as connection:
            problems = [str(r[0]) for r in connection.exec_driver_sql("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise damaged_error(self.url, problems)

    def adopt(self, new: NewVersion, version: int) -> VersionRecord:
        """Record a version already complete in the tree under its own number (rebuilding a lost
        catalog, adopting a foreign folder). The name's high-water mark becomes at least
        ``version``, so the number is never handed out again."""
        with self._write() as connection:
            _raise_high_water(connection, new.name, version)
            taken = connection.execute(
                select(_VERSIONS.c.id).where(
                    _VERSIONS.c.name == new.name, _VERSIONS.c.version == version
                )
            ).one_or_none()
            if taken is not None:
                raise CatalogError(
                    f"{new.name}:{version} already has a catalog row; it cannot be adopted again"
                )
            record = replace(new.pending(0, version), state=READY, token=None)
            columns = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "id"}
            columns["created_at"] = new.created_at.astimezone(timezone.utc).replace(tzinfo=None)
            inserted = connection.execute(insert(_VERSIONS).values(**columns)).inserted_primary_key
            assert inserted is not None
            row_id = int(inserted[0])
            if new.files:
                connection.execute(
                    insert(_FILES),
                    [
                        {"version_id": row_id, "relpath": f.relpath}
                        | {"size": f.size, "sha256": f.sha256}
                        for f in new.files
                    ],
                )
        return replace(record, id=row_id)

    def raise_high_water(self, name: str, version: int) -> None:
        """Make sure ``name`` never hands out ``version`` or a lower number again."""
        with self._write() as connection:
            _raise_high_water(connection, name, version)

    # --- catalog facts -----------------------------------------------------------------------

    def info(self) -> dict[str, str]:
        table = _INFO
        with self._read() as connection:
            return {r.key: r.value for r in connection.execute(select(table.c.key, table.c.value))}

    def set_info_default(self, key: str, value: str) -> None:
        """Record a fact once (the first writer wins; later calls keep it)."""
        table = _INFO
        with self._write() as connection:
            exists = connection.execute(
                select(table.c.key).where(table.c.key == key)
            ).scalar_one_or_none()
            if exists is None:
                connection.execute(insert(table).values(key=key, value=value))


def _raise_high_water(connection: Connection, name: str, version: int) -> None:
    last = connection.execute(
        select(_NAMES.c.last_version).where(_NAMES.c.name == name)
    ).scalar_one_or_none()
    if last is None:
        connection.execute(insert(_NAMES).values(name=name, last_version=version))
    elif last < version:
        connection.execute(update(_NAMES).where(_NAMES.c.name == name).values(last_version=version))


def _ready_row(connection: Connection, name: str, version: int | None) -> Any:
    """The ready row of ``name:version`` (the highest ready version when ``version`` is None)."""
    query = select(_VERSIONS).where(_VERSIONS.c.name == name, _VERSIONS.c.state == READY)
    if version is None:
        query = query.order_by(_VERSIONS.c.version.desc()).limit(1)
    else:
        query = query.where(_VERSIONS.c.version == version)
    return connection.execute(query).mappings().one_or_none()


_RECORD_FIELDS = [f.name for f in fields(VersionRecord)]


def _record(row: Any, **changes: Any) -> VersionRecord:
    values = {name: row[name] for name in _RECORD_FIELDS}
    created_at: datetime = values["created_at"]
    if created_at.tzinfo is None:
        values["created_at"] = created_at.replace(tzinfo=timezone.utc)
    values["tags"] = dict(values["tags"])
    values["properties"] = dict(values["properties"])
    values.update(changes)
    return VersionRecord(**values)


def _open_error(db_url: str, exc: BaseException) -> CatalogError:
    cause = one_line(getattr(exc, "orig", None) or exc)
    if is_damage(cause):
        return damaged_error(db_url, [cause])
    full = full_disk(db_url)
    if full is not None:
        return CatalogError(
            f"the disk holding {full} is full, and SQLite needs room for its side files even "
            f"to read the catalog ({cause}); free some space and retry (nothing was changed)"
        )
    return CatalogError(
        f"cannot open the catalog {parse_catalog_url(db_url)!r}: {one_line(exc)}",
        hint="check db_url= / MODELSTORE_DB_URL / home= and that the database file is a "
        "modelstore catalog",
        remedy="check_catalog_url",
        catalog=repr(parse_catalog_url(db_url)),
    )
