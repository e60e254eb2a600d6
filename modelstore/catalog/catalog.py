"""The catalog: which versions exist, their manifests and metadata. Knows nothing of the tree.

Writes run in ``BEGIN IMMEDIATE`` transactions on SQLite (see ``engine``), so a read-modify-write
such as "take the next version number" is atomic across processes. A server database runs
transactions side by side (PostgreSQL's read committed), so there every read-modify-write either
computes the new value in the database in one statement or first locks the rows it will change
(``FOR UPDATE``, which SQLite ignores). Reads use deferred transactions. The
hot operations (take a number, publish, the look-up behind ``Registry.path``) go to the
``VersionStore`` chosen for the backend when the catalog opens (see ``versionstore``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, Select, delete, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from modelstore.catalog import migrate
from modelstore.catalog.engine import create_catalog_engine, is_sqlite, parse_catalog_url
from modelstore.catalog.errors import (
    connection_error,
    damaged_error,
    driver_errors,
    full_disk,
    is_damage,
    one_line,
    permission_error,
)
from modelstore.catalog.fastpath import SqliteVersionStore, driver_connection
from modelstore.catalog.leases import Heartbeat, LeaseRecord, Owner, database_now, lease_lost
from modelstore.catalog.pgfastpath import PsycopgVersionStore
from modelstore.catalog.records import (
    AliasMoveRecord,
    AliasRecord,
    FileRecord,
    NewVersion,
    VersionRecord,
)
from modelstore.catalog.tables import ALIAS_HISTORY as _HISTORY
from modelstore.catalog.tables import ALIASES as _ALIASES
from modelstore.catalog.tables import DELETING, PENDING, READY
from modelstore.catalog.tables import FILES as _FILES
from modelstore.catalog.tables import INFO as _INFO
from modelstore.catalog.tables import LEASES as _LEASES
from modelstore.catalog.tables import NAMES as _NAMES
from modelstore.catalog.tables import VERSIONS as _VERSIONS
from modelstore.catalog.versionstore import (
    CoreVersionStore,
    LinkableFile,
    VersionStore,
    raise_high_water,
    reading,
    renew,
    row_values,
    writing,
)
from modelstore.errors import (
    AliasInUseError,
    CatalogError,
    ImportConflictError,
    PropertyImmutableError,
    VersionTakenError,
)


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
        # A failed connect reaches here as the driver's own error (psycopg's OperationalError),
        # not wrapped by SQLAlchemy.
        failures: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            sqlite3.Error,
            *driver_errors(self._engine),
        )
        try:
            migrate.ensure_schema(
                self._engine,
                migration_lock or migrate.no_lock(),
                refuse_new=refuse_new,
                read_only=read_only,
            )
            self._reader_fairy: Any = self._engine.raw_connection()
        except failures as exc:
            self._engine.dispose()
            raise _open_error(db_url, exc) from exc
        except BaseException:
            self._engine.dispose()
            raise
        self._versions: VersionStore
        if is_sqlite(make_url(db_url)):
            connection = driver_connection(self._reader_fairy)
            self._versions = SqliteVersionStore(connection, self._engine.dialect, db_url)
        elif self._engine.dialect.name == "postgresql" and self._engine.dialect.paramstyle == (
            "pyformat"  # psycopg 3 and psycopg2: the fast path's %(name)s parameters
        ):
            self._versions = PsycopgVersionStore(self._engine, db_url, self._reader_fairy)
            self._reader_fairy = None  # the version store's now: it closes or replaces it
        else:
            self._versions = CoreVersionStore(self._engine, db_url)
        self._reads = self._engine.execution_options(modelstore_read=True)
        self._heartbeat = Heartbeat(self.renew_leases)
        self._leased: set[str] = set()
        self._owner: Owner | None = None

    def close(self) -> None:
        self._heartbeat.stop()
        self._versions.close()
        if self._reader_fairy is not None:
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

    def reserve(self, new: NewVersion, *, leased: bool = False) -> VersionRecord:
        """Take the next number for ``new.name`` and record the version as pending, in one
        transaction: the number is spent even if the publish never completes. ``leased``: the
        registration holds the lease of ``new.token`` (``lease``); LeaseLostError, nothing
        written, if a doctor has taken it away."""
        return self._versions.reserve(new, leased)

    def reserve_exact(
        self, new: NewVersion, version: int, *, leased: bool = False
    ) -> VersionRecord:
        """``reserve`` for a number the caller chose (``version:`` of a v2 model.yml): taken
        and recorded as pending in one transaction, if it is free. Free means above every
        number ``new.name`` has used, so a number is never handed out twice, even after a
        delete; the name's next automatic number follows it. Otherwise VersionTakenError."""
        with self._write() as connection:
            if leased and not renew(connection, [new.token]):
                raise lease_lost(new.name, new.token)
            last = connection.execute(
                select(_NAMES.c.last_version).where(_NAMES.c.name == new.name)
            ).scalar_one_or_none()
            if last is not None and version <= last:
                exists = connection.execute(
                    select(_VERSIONS.c.id).where(
                        _VERSIONS.c.name == new.name, _VERSIONS.c.version == version
                    )
                ).first()
                why = (
                    "exists"
                    if exists is not None
                    else f"was used before (numbers are never reused; the last one is {last})"
                )
                raise VersionTakenError(
                    f"version {version} of {new.name!r} {why}; give a version above {last}, "
                    "or leave version: out to take the next one",
                    name=new.name,
                    version=version,
                    last=last,
                )
            raise_high_water(connection, new.name, version)
            pending = new.pending(0, version)
            row_id = _insert_version(connection, row_values(pending), new)
        return replace(pending, id=row_id)

    def set_state(
        self, row_id: int, state: str, *, expected: str, release: str | None = None
    ) -> bool:
        """Move a row from ``expected`` to ``state``; False if it is no longer in ``expected``
        (another process finished or removed it meanwhile). ``release``: the token whose lease
        goes in the same transaction (the operation's last step)."""
        if release is not None:
            self._leased.discard(release)
        return self._versions.set_state(row_id, state, expected, release)

    def forget(self, row_ids: Iterable[int], *, release: str | None = None) -> None:
        """Remove version rows and their manifests (the name's high-water mark stays);
        ``release`` as for ``set_state``."""
        ids = list(row_ids)
        if release is not None:
            self._leased.discard(release)
        if not ids and release is None:
            return
        with self._write() as connection:
            if ids:
                connection.execute(delete(_FILES).where(_FILES.c.version_id.in_(ids)))
                connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id.in_(ids)))
            if release is not None:
                connection.execute(delete(_LEASES).where(_LEASES.c.token == release))

    # --- leases: work in progress, visible to every home (see ``leases``) --------------------

    @contextlib.contextmanager
    def lease(self, token: str, operation: str, name: str, owner: Owner) -> Iterator[None]:
        """Hold the lease of ``token`` while the block runs: recorded on entry, renewed by the
        heartbeat thread, and removed on the way out unless the operation's last step removed
        it already (``release=``). If the block fails, removing it is best effort: a lease
        left behind is a doctor's to drop once its process is gone."""
        self._versions.take_lease(LeaseRecord(token, operation, name, owner, 0))
        self._owner = owner
        self._leased.add(token)
        self._heartbeat.hold(token)
        try:
            yield
        except BaseException:
            if token in self._leased:
                with contextlib.suppress(CatalogError):
                    self.release_lease(token)
            raise
        finally:
            self._heartbeat.drop(token)
        if token in self._leased:
            self.release_lease(token)

    def release_lease(self, token: str) -> None:
        self._leased.discard(token)
        with self._write() as connection:
            connection.execute(delete(_LEASES).where(_LEASES.c.token == token))

    def renew_leases(self, tokens: Sequence[str]) -> int:
        """Heartbeat: the database's clock now on these leases of this process; how many still
        exist. A lease whose owner fields changed is no longer this process's to renew."""
        with self._write() as connection:
            return renew(connection, list(tokens), self._owner)

    def leases(self) -> tuple[int, dict[str, LeaseRecord]]:
        """The database's clock (seconds since the epoch) and every lease by token, read in one
        transaction so the heartbeats' ages are exact."""
        with self._read() as connection:
            now = int(
                connection.execute(select(database_now(connection.dialect.name))).scalar_one()
            )
            rows = connection.execute(select(_LEASES)).mappings().all()
        return now, {r["token"]: _lease(r) for r in rows}

    def has_lease(self, token: str) -> bool:
        with self._read() as connection:
            found = connection.execute(select(_LEASES.c.token).where(_LEASES.c.token == token))
            return found.first() is not None

    def settle(self, record: VersionRecord, lease: LeaseRecord, state: str | None) -> bool:
        """Settle the work of a lease whose owner is gone: the row of ``record`` moves to
        ``state`` (None: it is removed, with its manifest) and the lease goes, in one
        transaction, only if both are still exactly as read (the heartbeat too: a renewal
        since means the owner lives). False, nothing changed, otherwise."""
        with self._write() as connection:
            if not _lock_lease(connection, lease):
                return False
            found = connection.execute(
                select(_VERSIONS.c.id).where(*self._same_row(record)).with_for_update()
            ).one_or_none()
            if found is None:
                return False
            if state is None:
                connection.execute(delete(_FILES).where(_FILES.c.version_id == record.id))
                connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id == record.id))
            else:
                connection.execute(
                    update(_VERSIONS).where(*self._same_row(record)).values(state=state)
                )
            connection.execute(delete(_LEASES).where(_LEASES.c.token == lease.token))
        return True

    def drop_lease(self, lease: LeaseRecord) -> bool:
        """Remove the lease of an owner that is gone, if it is still exactly as read and no
        row carries its token (else the row's settling removes it)."""
        with self._write() as connection:
            if not _lock_lease(connection, lease):
                return False
            rows = connection.execute(
                select(_VERSIONS.c.id).where(_VERSIONS.c.token == lease.token).limit(1)
            ).first()
            if rows is not None:
                return False
            connection.execute(delete(_LEASES).where(_LEASES.c.token == lease.token))
        return True

    def start_delete(
        self,
        name: str,
        versions: Sequence[int] | None,
        token: str,
        *,
        aliases: bool | Collection[str] = False,
        by: str = "",
        removed: dict[str, int] | None = None,
    ) -> list[VersionRecord]:
        """Flip the chosen ready versions (every one when ``versions`` is None) to ``deleting``
        (invisible from now on) in one transaction and return them; the caller then removes the
        folders and ``forget``s them.

        An alias pointing at one of them refuses the whole delete (AliasInUseError, nothing
        changed) unless ``aliases`` allows it (True: any; a collection: those aliases, so an
        alias set after a plan was shown still refuses); allowed ones are removed in the same
        transaction, their removal recorded in the history, and put into ``removed``."""
        with self._write() as connection:
            where = [_VERSIONS.c.name == name, _VERSIONS.c.state == READY]
            if versions is not None:
                where.append(_VERSIONS.c.version.in_(list(versions)))
            rows = (
                connection.execute(select(_VERSIONS).where(*where).with_for_update())
                .mappings()
                .all()
            )
            pointing = _aliases_at(connection, name, [r["version"] for r in rows])
            refused = {
                alias: version
                for alias, version in pointing.items()
                if aliases is not True and (aliases is False or alias not in aliases)
            }
            if refused:
                raise alias_in_use(name, refused)
            if pointing:
                _remove_aliases(connection, name, pointing, by)
                if removed is not None:
                    removed.update(pointing)
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
            row = connection.execute(_ready_query(name, version)).mappings().one_or_none()
        return None if row is None else _record(row)

    def ready_versions(self, name: str | None = None) -> list[VersionRecord]:
        """Ready versions, name ascending then version descending (Azure ML's order)."""
        query = select(_VERSIONS).where(_VERSIONS.c.state == READY)
        if name is not None:
            query = query.where(_VERSIONS.c.name == name)
        query = query.order_by(_VERSIONS.c.name, _VERSIONS.c.version.desc())
        with self._read() as connection:
            return [_record(r) for r in connection.execute(query).mappings()]

    def linkable_files(
        self, name: str, limit: int, *, but: int | None = None
    ) -> list[LinkableFile]:
        """The files of ``name``'s ``limit`` newest ready versions (other than ``but``), newest
        first, in one query: what a new version may hard-link from a home's cache."""
        return self._versions.linkable_files(name, limit, but)

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

    def has_row(self, name: str, version: int) -> bool:
        """Whether ``name:version`` has a row in any state (pending, ready, deleting)."""
        with self._read() as connection:
            found = connection.execute(
                select(_VERSIONS.c.id).where(
                    _VERSIONS.c.name == name, _VERSIONS.c.version == version
                )
            ).first()
        return found is not None

    def unchanged(self, record: VersionRecord) -> bool:
        """True if the row is still exactly as in ``record`` (same version, state and token):
        no live process moved it on since it was read."""
        with self._read() as connection:
            token = connection.execute(
                select(_VERSIONS.c.token).where(*self._same_row(record))
            ).one_or_none()
        return token is not None and token[0] == record.token

    def set_row_state(self, record: VersionRecord, state: str) -> bool:
        """Move the row of ``record`` from ``record.state`` to ``state`` if it still is that;
        its operation's lease (its owner is gone) goes with it."""
        with self._write() as connection:
            result = connection.execute(
                update(_VERSIONS).where(*self._same_row(record)).values(state=state)
            )
            if result.rowcount and record.token is not None:
                connection.execute(delete(_LEASES).where(_LEASES.c.token == record.token))
        return bool(result.rowcount)

    def forget_row(self, record: VersionRecord) -> bool:
        """Remove the row of ``record`` (and its manifest) if it still is as recorded; its
        operation's lease goes with it."""
        with self._write() as connection:
            found = connection.execute(
                select(_VERSIONS.c.id).where(*self._same_row(record)).with_for_update()
            ).one_or_none()
            if found is None:
                return False
            connection.execute(delete(_FILES).where(_FILES.c.version_id == record.id))
            connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id == record.id))
            if record.token is not None:
                connection.execute(delete(_LEASES).where(_LEASES.c.token == record.token))
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
            raise_high_water(connection, new.name, version)
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
            row_id = _insert_version(connection, columns, new)
        return replace(record, id=row_id)

    def raise_high_water(self, name: str, version: int) -> None:
        """Make sure ``name`` never hands out ``version`` or a lower number again."""
        with self._write() as connection:
            raise_high_water(connection, name, version)

    # --- import: versions under given numbers ------------------------------------------------

    def last_version(self, name: str) -> int | None:
        """The name's high-water mark: the highest number it ever handed out (None: never)."""
        with self._read() as connection:
            last = connection.execute(
                select(_NAMES.c.last_version).where(_NAMES.c.name == name)
            ).scalar_one_or_none()
        return None if last is None else int(last)

    def reserve_numbered(
        self, wanted: Sequence[tuple[NewVersion, int]]
    ) -> tuple[list[VersionRecord], dict[str, int | None]]:
        """Record every version as *pending* under its own number, in ONE transaction: all of
        them or none. A number at or below the name's high-water mark is refused (it is taken,
        or was used by a deleted version: numbers are never reused), so a concurrent
        ``register`` can never be handed one of them. Not a hot path: Core on every backend.
        Returns the records and each name's previous mark (for ``release_numbered``)."""
        records: list[VersionRecord] = []
        previous: dict[str, int | None] = {}
        with self._write() as connection:
            for new, version in sorted(wanted, key=lambda item: (item[0].name, item[1])):
                last = connection.execute(
                    select(_NAMES.c.last_version).where(_NAMES.c.name == new.name)
                ).scalar_one_or_none()
                previous.setdefault(new.name, last)
                if last is not None and version <= last:
                    raise ImportConflictError(
                        f"{new.name}:{version} was taken meanwhile (the highest number "
                        f"{new.name} used is {last}); nothing was imported",
                        hint="check Registry.list() and retry",
                        remedy="check_list",
                        conflicts=[(new.name, version, "taken")],
                    )
                raise_high_water(connection, new.name, version)
                pending = new.pending(0, version)
                row_id = _insert_version(connection, row_values(pending), new)
                records.append(replace(pending, id=row_id))
        return records, previous

    def make_ready(
        self,
        row_ids: Sequence[int],
        aliases: Sequence[tuple[str, str, int]] = (),
        by: str = "",
    ) -> bool:
        """Flip pending rows to ready in ONE transaction (an import appears all at once); False,
        changing nothing, if any of them is no longer pending (doctor rolled it back).
        ``aliases`` (name, alias, version) are created in the same transaction, each recorded
        in the history; one that exists pointing elsewhere by then (set since the import was
        planned) raises ImportConflictError and nothing changes."""
        ids = list(row_ids)
        now = datetime.now(timezone.utc)
        try:
            with self._write() as connection:
                if ids:
                    result = connection.execute(
                        update(_VERSIONS)
                        .where(_VERSIONS.c.id.in_(ids), _VERSIONS.c.state == PENDING)
                        .values(state=READY)
                    )
                    if result.rowcount != len(ids):
                        raise _RolledBack  # leaving the block by an exception rolls it back
                for name, alias, version in aliases:
                    current = _locked_alias(connection, name, alias)
                    if current is None and _insert_alias(connection, name, alias, version):
                        _record_move(
                            connection, AliasMoveRecord(name, alias, None, version, now, by)
                        )
                        continue
                    current = _locked_alias(connection, name, alias)
                    if current != version:
                        raise ImportConflictError(
                            f"nothing was imported: alias {name}@{alias} was set to "
                            f"{name}:{current} while importing; move or remove it and retry",
                            conflicts=[(name, version, f"alias {alias!r} points elsewhere")],
                        )
        except _RolledBack:
            return False
        return True

    def alias_target(self, name: str, alias: str) -> int | None:
        """The version ``name@alias`` points at (ready or not), None if it is not set."""
        query = select(_ALIASES.c.version).where(_ALIASES.c.name == name, _ALIASES.c.alias == alias)
        with self._read() as connection:
            value = connection.execute(query).scalar_one_or_none()
        return None if value is None else int(value)

    def release_numbered(
        self, row_ids: Sequence[int], marks: Mapping[str, int], previous: Mapping[str, int | None]
    ) -> None:
        """Undo ``reserve_numbered`` after a failed import: drop the rows, and put each name's
        high-water mark back where it was if nothing took a number since (``marks``: the mark
        the import set), so the same import can be retried."""
        ids = list(row_ids)
        with self._write() as connection:
            connection.execute(delete(_FILES).where(_FILES.c.version_id.in_(ids)))
            connection.execute(delete(_VERSIONS).where(_VERSIONS.c.id.in_(ids)))
            for name, mark in marks.items():
                before = previous.get(name)
                current = _NAMES.c.name == name
                if before is None:
                    connection.execute(delete(_NAMES).where(current, _NAMES.c.last_version == mark))
                else:
                    connection.execute(
                        update(_NAMES)
                        .where(current, _NAMES.c.last_version == mark)
                        .values(last_version=before)
                    )

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
                try:  # another process may insert it meanwhile (on a server database)
                    with connection.begin_nested():
                        connection.execute(insert(table).values(key=key, value=value))
                except IntegrityError:
                    pass

    # --- aliases -----------------------------------------------------------------------------
    #
    # An alias and the history row of its move are written in one immediate transaction, so
    # concurrent moves are serialised: each one reads the version the previous one left, and
    # the history is a chain (every from_version is the previous to_version).

    def set_alias(self, name: str, alias: str, version: int, by: str) -> AliasMoveRecord | None:
        """Point ``name@alias`` at ``version``; the move made, or None if ``name:version`` is not
        a ready version (nothing changed). Setting it to where it already points is no move:
        nothing is written and the returned record has ``from_version == to_version``."""
        now = datetime.now(timezone.utc)
        with self._write() as connection:
            if _ready_row(connection, name, version) is None:
                return None
            while True:  # until the alias row is ours: created by us, or locked by us
                current = _locked_alias(connection, name, alias)
                if current is not None or _insert_alias(connection, name, alias, version):
                    break
            move = AliasMoveRecord(name, alias, current, version, now, by)
            if current == version:
                return move
            if current is not None:
                connection.execute(
                    update(_ALIASES)
                    .where(_ALIASES.c.name == name, _ALIASES.c.alias == alias)
                    .values(version=version)
                )
            _record_move(connection, move)
        return move

    def remove_alias(self, name: str, alias: str, by: str) -> AliasMoveRecord | None:
        """Remove ``name@alias``; the move made, or None if there is no such alias."""
        with self._write() as connection:
            current = _locked_alias(connection, name, alias)
            if current is None:
                return None
            moves = _remove_aliases(connection, name, {alias: current}, by)
        return moves[0]

    def restore_aliases(self, name: str, aliases: Mapping[str, int], by: str) -> None:
        """Put back aliases a failed delete removed (its versions are visible again), unless
        one was set again meanwhile; each return is recorded in the history too."""
        now = datetime.now(timezone.utc)
        with self._write() as connection:
            for alias, version in sorted(aliases.items()):
                if _ready_row(connection, name, version) is not None and _insert_alias(
                    connection, name, alias, version
                ):
                    _record_move(connection, AliasMoveRecord(name, alias, None, version, now, by))

    def locate_alias(self, name: str, alias: str) -> tuple[int, str] | None:
        """(version, entry) of the ready version ``name@alias`` points at: one indexed query."""
        return self._versions.locate_alias(name, alias)

    def aliases(self, name: str | None = None) -> list[AliasRecord]:
        """Aliases by name, then alias (of one name when given)."""
        query = select(_ALIASES.c.name, _ALIASES.c.alias, _ALIASES.c.version)
        if name is not None:
            query = query.where(_ALIASES.c.name == name)
        query = query.order_by(_ALIASES.c.name, _ALIASES.c.alias)
        with self._read() as connection:
            return [AliasRecord(r.name, r.alias, r.version) for r in connection.execute(query)]

    def alias_history(self, name: str) -> list[AliasMoveRecord]:
        """Every move of the aliases of ``name``, oldest first."""
        query = select(_HISTORY).where(_HISTORY.c.name == name).order_by(_HISTORY.c.id)
        with self._read() as connection:
            return [
                AliasMoveRecord(
                    r["name"],
                    r["alias"],
                    r["from_version"],
                    r["to_version"],
                    _utc(r["at"]),
                    r["by"],
                )
                for r in connection.execute(query).mappings()
            ]


def _aliases_at(connection: Connection, name: str, versions: Sequence[int]) -> dict[str, int]:
    """alias -> version for the aliases of ``name`` pointing at any of ``versions``, their rows
    locked (a move away from a version being deleted waits for the delete to decide)."""
    if not versions:
        return {}
    rows = connection.execute(
        select(_ALIASES.c.alias, _ALIASES.c.version)
        .where(_ALIASES.c.name == name, _ALIASES.c.version.in_(list(versions)))
        .with_for_update()
    )
    return {r.alias: r.version for r in rows}


def _remove_aliases(
    connection: Connection, name: str, aliases: Mapping[str, int], by: str
) -> list[AliasMoveRecord]:
    now = datetime.now(timezone.utc)
    moves = []
    for alias, version in sorted(aliases.items()):
        removed = connection.execute(
            delete(_ALIASES).where(
                _ALIASES.c.name == name, _ALIASES.c.alias == alias, _ALIASES.c.version == version
            )
        )
        if not removed.rowcount:  # moved elsewhere meanwhile (a server database): not ours
            continue
        move = AliasMoveRecord(name, alias, version, None, now, by)
        _record_move(connection, move)
        moves.append(move)
    return moves


def _locked_alias(connection: Connection, name: str, alias: str) -> int | None:
    """The version ``name@alias`` points at, its row locked until the transaction ends
    (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already excludes other writers), so a move
    reads the version it moves from and no concurrent move slips in between: on PostgreSQL
    the second mover waits, then reads the first one's version, and the history chains."""
    query = select(_ALIASES.c.version).where(_ALIASES.c.name == name, _ALIASES.c.alias == alias)
    value = connection.execute(query.with_for_update()).scalar_one_or_none()
    return None if value is None else int(value)


def _insert_alias(connection: Connection, name: str, alias: str, version: int) -> bool:
    """Create ``name@alias`` if no row exists; False if one does (on PostgreSQL, one another
    transaction created meanwhile: ``ON CONFLICT DO NOTHING`` waits for it to commit rather
    than failing on the primary key)."""
    values = {"name": name, "alias": alias, "version": version}
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = (
            pg_insert(_ALIASES)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(_ALIASES.c.version)
        )
        return connection.execute(statement).first() is not None
    exists = connection.execute(
        select(_ALIASES.c.version).where(_ALIASES.c.name == name, _ALIASES.c.alias == alias)
    ).first()
    if exists is not None:
        return False
    connection.execute(insert(_ALIASES).values(**values))
    return True


def _record_move(connection: Connection, move: AliasMoveRecord) -> None:
    connection.execute(
        insert(_HISTORY).values(
            name=move.name,
            alias=move.alias,
            from_version=move.from_version,
            to_version=move.to_version,
            at=move.at.astimezone(timezone.utc).replace(tzinfo=None),
            by=move.by,
        )
    )


def alias_in_use(name: str, aliases: Mapping[str, int]) -> AliasInUseError:
    """The one line refusing to delete versions that aliases point at."""
    items = sorted(aliases.items(), key=lambda item: (-item[1], item[0]))
    ids = [f"{name}:{version}" for version in sorted({v for _, v in items}, reverse=True)]
    if len(items) == 1:
        alias, version = items[0]
        return AliasInUseError(
            f"{name}:{version} is what alias {alias!r} points at",
            hint=f"move or remove the alias first (Registry.remove_alias({name!r}, {alias!r})), "
            "or delete with force=True, which removes the alias too",
            remedy="alias_in_use",
            name=name,
            aliases=dict(aliases),
        )
    shown = ", ".join(f"{alias!r} ({name}:{version})" for alias, version in items)
    return AliasInUseError(
        f"{' and '.join(ids)} {'is' if len(ids) == 1 else 'are'} what aliases {shown} point at",
        hint=f"move or remove the aliases first (Registry.remove_alias({name!r}, "
        f"{items[0][0]!r})), or delete with force=True, which removes them too",
        remedy="alias_in_use",
        name=name,
        aliases=dict(aliases),
    )


def _lease(row: Any) -> LeaseRecord:
    owner = Owner(row["home"], row["host"], row["host_id"], int(row["pid"]), row["started"])
    return LeaseRecord(row["token"], row["operation"], row["name"], owner, int(row["heartbeat"]))


def _lock_lease(connection: Connection, lease: LeaseRecord) -> bool:
    """Lock the lease's row if it is still as read (same owner, same heartbeat)."""
    found = connection.execute(
        select(_LEASES.c.token)
        .where(
            _LEASES.c.token == lease.token,
            _LEASES.c.pid == lease.owner.pid,
            _LEASES.c.host == lease.owner.host,
            _LEASES.c.heartbeat == lease.heartbeat,
        )
        .with_for_update()
    ).first()
    return found is not None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class _RolledBack(Exception):
    """Raised inside a write transaction to roll it back."""


def _insert_version(connection: Connection, columns: Mapping[str, Any], new: NewVersion) -> int:
    """Insert one version row and its file rows; the new row's id. Every way a version enters
    the catalog under a number already decided (exact, imported, adopted) goes through here."""
    inserted = connection.execute(insert(_VERSIONS).values(**columns)).inserted_primary_key
    assert inserted is not None
    row_id = int(inserted[0])
    if new.files:
        connection.execute(
            insert(_FILES),
            [
                {"version_id": row_id, "relpath": f.relpath} | {"size": f.size, "sha256": f.sha256}
                for f in new.files
            ],
        )
    return row_id


def _ready_row(connection: Connection, name: str, version: int | None) -> Any:
    """The ready row of ``name:version`` (the highest ready version when ``version`` is None),
    locked until the transaction ends (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already
    excludes other writers), so that a read-modify-write of its tags or properties never loses
    another process's change."""
    locked = _ready_query(name, version).with_for_update()
    return connection.execute(locked).mappings().one_or_none()


def _ready_query(name: str, version: int | None) -> Select[Any]:
    """The ready row of ``name:version``, or the highest ready version when ``version`` is None."""
    query = select(_VERSIONS).where(_VERSIONS.c.name == name, _VERSIONS.c.state == READY)
    if version is None:
        return query.order_by(_VERSIONS.c.version.desc()).limit(1)
    return query.where(_VERSIONS.c.version == version)


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
    unreachable = connection_error(db_url, exc) or permission_error(db_url, exc)
    if unreachable is not None:
        return unreachable
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
